package main

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// cpuTimes returns total and idle (idle+iowait) jiffies from /proc/stat.
func cpuTimes() (total, idle uint64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0
	}
	for i, s := range f[1:] {
		v, _ := strconv.ParseUint(s, 10, 64)
		total += v
		if i == 3 || i == 4 { // idle, iowait
			idle += v
		}
	}
	return total, idle
}

// cpuBusy is the fraction of all CPUs busy over the next interval.
func cpuBusy(interval time.Duration) float64 {
	t0, i0 := cpuTimes()
	time.Sleep(interval)
	t1, i1 := cpuTimes()
	if t1 <= t0 {
		return 0
	}
	return 1 - float64(i1-i0)/float64(t1-t0)
}

// waitQuiet waits up to o.BusyWait for the machine to be no busier than
// o.MaxBusy; it returns the last busy fraction and whether it gave up.
func waitQuiet(o Options) (busy float64, flagged bool) {
	deadline := time.Now().Add(o.BusyWait)
	for {
		busy = cpuBusy(300 * time.Millisecond)
		if busy <= o.MaxBusy {
			return busy, false
		}
		if time.Now().After(deadline) {
			return busy, true
		}
		time.Sleep(700 * time.Millisecond)
	}
}
