package main

import (
	"encoding/json"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// startProfile writes a CPU profile and an execution trace of this server
// run into dir (set COMPARE_PROFILE_DIR to get them), for "where does the
// time go" questions, an allocation profile, and a .stats.json of what the
// process did in the meantime (rusage, allocations, requests served:
// per-request costs). With
// COMPARE_PROFILE_BLOCK=N it also records block (every blocking event of
// N ns or more, on average) and mutex (every contention) profiles, which
// slow the server: take them in a run of their own. COMPARE_PROFILE_NOTRACE=1
// leaves the trace out. The returned func
// stops everything and writes the files.
func startProfile(dir, name string) (func(), error) {
	cpu, err := os.CreateTemp(dir, name+"-*.cpu.pprof")
	if err != nil {
		return nil, err
	}
	base := strings.TrimSuffix(cpu.Name(), ".cpu.pprof")
	tr, err := os.Create(base + ".trace")
	if err != nil {
		cpu.Close()
		return nil, err
	}
	if err := pprof.StartCPUProfile(cpu); err != nil {
		cpu.Close()
		tr.Close()
		return nil, err
	}
	if os.Getenv("COMPARE_PROFILE_NOTRACE") != "" {
		// A trace of hundreds of thousands of datagrams a second costs
		// the server much of its CPU: the UDP profiles go without.
		tr.Close()
		os.Remove(tr.Name())
		tr = nil
	} else if err := trace.Start(tr); err != nil {
		pprof.StopCPUProfile()
		cpu.Close()
		tr.Close()
		return nil, err
	}
	blockRate := 0
	if v := os.Getenv("COMPARE_PROFILE_BLOCK"); v != "" {
		if blockRate, err = strconv.Atoi(v); err != nil || blockRate < 1 {
			blockRate = 1
		}
		runtime.SetBlockProfileRate(blockRate)
		runtime.SetMutexProfileFraction(1)
	}
	before := takeProcStats()
	return func() {
		after := takeProcStats()
		if tr != nil {
			trace.Stop()
			tr.Close()
		}
		pprof.StopCPUProfile()
		cpu.Close()
		profiles := []string{"allocs"} // sampled every 512 KB (runtime.MemProfileRate)
		if blockRate > 0 {
			profiles = append(profiles, "block", "mutex")
		}
		for _, p := range profiles {
			if f, err := os.Create(base + "." + p + ".pprof"); err == nil {
				_ = pprof.Lookup(p).WriteTo(f, 0)
				f.Close()
			}
		}
		if f, err := os.Create(base + ".stats.json"); err == nil {
			enc := json.NewEncoder(f)
			enc.SetIndent("", "  ")
			_ = enc.Encode(after.minus(before))
			f.Close()
		}
	}, nil
}

// procStats is what the process has done so far (counters) or, after
// minus, in an interval; PerRequest divides by the requests served.
type procStats struct {
	Seconds             float64
	Requests            float64 // served by the http workload's handler
	UserSeconds         float64
	SystemSeconds       float64
	VoluntarySwitches   float64 // the threads blocked (futex, epoll, read)
	InvoluntarySwitches float64
	HeapAllocObjects    float64
	HeapAllocBytes      float64
	MutexWaitSeconds    float64
	GCCycles            float64
	PerRequest          map[string]float64 `json:",omitempty"`
}

var procMetrics = []string{"/gc/heap/allocs:objects", "/gc/heap/allocs:bytes", "/sync/mutex/wait/total:seconds", "/gc/cycles/total:gc-cycles"}

func takeProcStats() procStats {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
	samples := make([]metrics.Sample, len(procMetrics))
	for i, n := range procMetrics {
		samples[i].Name = n
	}
	metrics.Read(samples)
	val := func(i int) float64 {
		switch samples[i].Value.Kind() {
		case metrics.KindUint64:
			return float64(samples[i].Value.Uint64())
		case metrics.KindFloat64:
			return samples[i].Value.Float64()
		}
		return 0
	}
	tv := func(t unix.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return procStats{
		Seconds: float64(time.Now().UnixNano()) / 1e9, Requests: float64(requestsServed.Load()),
		UserSeconds: tv(ru.Utime), SystemSeconds: tv(ru.Stime),
		VoluntarySwitches: float64(ru.Nvcsw), InvoluntarySwitches: float64(ru.Nivcsw),
		HeapAllocObjects: val(0), HeapAllocBytes: val(1), MutexWaitSeconds: val(2), GCCycles: val(3),
	}
}

func (a procStats) minus(b procStats) procStats {
	d := procStats{
		Seconds: a.Seconds - b.Seconds, Requests: a.Requests - b.Requests,
		UserSeconds: a.UserSeconds - b.UserSeconds, SystemSeconds: a.SystemSeconds - b.SystemSeconds,
		VoluntarySwitches: a.VoluntarySwitches - b.VoluntarySwitches, InvoluntarySwitches: a.InvoluntarySwitches - b.InvoluntarySwitches,
		HeapAllocObjects: a.HeapAllocObjects - b.HeapAllocObjects, HeapAllocBytes: a.HeapAllocBytes - b.HeapAllocBytes,
		MutexWaitSeconds: a.MutexWaitSeconds - b.MutexWaitSeconds, GCCycles: a.GCCycles - b.GCCycles,
	}
	if d.Requests > 0 {
		r := d.Requests
		d.PerRequest = map[string]float64{
			"cpu_us":               1e6 * (d.UserSeconds + d.SystemSeconds) / r,
			"user_us":              1e6 * d.UserSeconds / r,
			"system_us":            1e6 * d.SystemSeconds / r,
			"voluntary_switches":   d.VoluntarySwitches / r,
			"involuntary_switches": d.InvoluntarySwitches / r,
			"alloc_objects":        d.HeapAllocObjects / r,
			"alloc_bytes":          d.HeapAllocBytes / r,
			"mutex_wait_us":        1e6 * d.MutexWaitSeconds / r,
		}
	}
	return d
}
