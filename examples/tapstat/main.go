// Command tapstat watches a running tapstack example through its -admin
// endpoint, the way `nstat` and `sar -n` watch the kernel: every interval it
// prints the counters that moved, with their change per second, and with -ss
// the socket listing.
//
//	tapstat -admin 127.0.0.1:9090 -interval 1s
//	tapstat -admin 127.0.0.1:9090 -ss -count 1
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"time"
)

type snapshot struct {
	Counters map[string]uint64 `json:"counters"`
	Softnet  []struct {
		Processed   uint64 `json:"processed"`
		Dropped     uint64 `json:"dropped"`
		TimeSqueeze uint64 `json:"time_squeeze"`
		BacklogLen  uint64 `json:"backlog_len"`
	} `json:"softnet"`
}

func main() {
	addr := flag.String("admin", "127.0.0.1:9090", "admin endpoint of a running example (its -admin flag)")
	interval := flag.Duration("interval", time.Second, "sampling interval")
	count := flag.Int("count", 0, "number of reports (0: until interrupted)")
	ss := flag.Bool("ss", false, "also print the socket listing each interval")
	all := flag.Bool("a", false, "print counters that did not move too")
	flag.Parse()
	if *interval <= 0 {
		fmt.Fprintln(os.Stderr, "tapstat: -interval must be positive")
		os.Exit(2)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	base := "http://" + *addr
	prev, err := fetch(client, base)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tapstat:", err)
		os.Exit(1)
	}
	prevAt := time.Now()
	for n := 0; *count == 0 || n < *count; n++ {
		time.Sleep(*interval)
		cur, err := fetch(client, base)
		if err != nil {
			fmt.Fprintln(os.Stderr, "tapstat:", err)
			os.Exit(1)
		}
		now := time.Now()
		report(os.Stdout, prev, cur, now.Sub(prevAt), *all)
		if *ss {
			if err := copyText(client, base+"/debug/ss", os.Stdout); err != nil {
				fmt.Fprintln(os.Stderr, "tapstat:", err)
			}
		}
		prev, prevAt = cur, now
	}
}

func fetch(c *http.Client, base string) (*snapshot, error) {
	resp, err := c.Get(base + "/debug/stats.json")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s/debug/stats.json: %s", base, resp.Status)
	}
	var s snapshot
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return nil, fmt.Errorf("%s/debug/stats.json: %w", base, err)
	}
	return &s, nil
}

func copyText(c *http.Client, url string, w io.Writer) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(w, resp.Body)
	return err
}

// report prints, like nstat, each counter's current value and its rate.
func report(w io.Writer, prev, cur *snapshot, dt time.Duration, all bool) {
	names := make([]string, 0, len(cur.Counters))
	for name := range cur.Counters {
		names = append(names, name)
	}
	sort.Strings(names)
	fmt.Fprintf(w, "#%s  (per second over %s)\n", time.Now().Format(time.TimeOnly), dt.Round(time.Millisecond))
	secs := dt.Seconds()
	for _, name := range names {
		v, p := cur.Counters[name], prev.Counters[name]
		if v == p && !all {
			continue
		}
		fmt.Fprintf(w, "%-32s %-14d %.1f\n", name, v, float64(int64(v-p))/secs)
	}
	for i, sn := range cur.Softnet {
		if i >= len(prev.Softnet) {
			break
		}
		ps := prev.Softnet[i]
		if sn == ps && !all {
			continue
		}
		fmt.Fprintf(w, "softnet shard %d: processed %.0f/s dropped %.0f/s time_squeeze %.0f/s backlog %d\n", i,
			float64(sn.Processed-ps.Processed)/secs, float64(sn.Dropped-ps.Dropped)/secs,
			float64(sn.TimeSqueeze-ps.TimeSqueeze)/secs, sn.BacklogLen)
	}
}
