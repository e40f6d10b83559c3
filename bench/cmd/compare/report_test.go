package main

import (
	"errors"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var d []time.Duration
		for _, x := range v {
			d = append(d, time.Duration(x)*time.Millisecond)
		}
		return d
	}
	tests := []struct {
		in   []time.Duration
		p    int
		want time.Duration
	}{
		{nil, 50, 0},
		{ms(5), 99, 5 * time.Millisecond},
		{ms(3, 1, 2), 50, 2 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 50, 5 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := percentile(tt.in, tt.p); got != tt.want {
			t.Errorf("percentile(%v, %d) = %v, want %v", tt.in, tt.p, got, tt.want)
		}
	}
}

func TestSummarize(t *testing.T) {
	recs := []runRecord{
		{Stack: "kernel", Workload: "rtt", Metrics: map[string]float64{"p50_us": 30}},
		{Stack: "kernel", Workload: "rtt", Metrics: map[string]float64{"p50_us": 10}, Flagged: true},
		{Stack: "kernel", Workload: "rtt", Metrics: map[string]float64{"p50_us": 20}},
		{Stack: "kernel", Workload: "rtt", Err: errors.New("boom")},
		{Stack: "gvisor", Workload: "rtt", Metrics: map[string]float64{"p50_us": 99}},
	}
	c := summarize(recs, "kernel", "rtt", "p50_us")
	if c.median != 20 || c.min != 10 || c.max != 30 || c.errs != 1 || c.busy != 1 {
		t.Fatalf("summarize = %+v", c)
	}
	if got, want := c.render("%.0f"), "20 (10–30) +1 err*"; got != want {
		t.Errorf("render = %q, want %q", got, want)
	}
	g := summarize(recs, "gvisor", "rtt", "p50_us")
	if got := ratio(g, c); got != "4.95" {
		t.Errorf("ratio = %s", got)
	}
	tiny := cell{hasValue: true, median: 7}
	huge := cell{hasValue: true, median: 1900}
	for _, tt := range []struct {
		a, b cell
		want string
	}{{tiny, huge, "0.0037"}, {huge, tiny, "271"}, {c, c, "1.00"}, {c, cell{}, "–"}} {
		if got := ratio(tt.a, tt.b); got != tt.want {
			t.Errorf("ratio(%v, %v) = %s, want %s", tt.a.median, tt.b.median, got, tt.want)
		}
	}
	if got := summarize(recs, "tapstack", "rtt", "p50_us").render("%.0f"); got != "–" {
		t.Errorf("empty cell renders %q", got)
	}
}

func TestParseGOMAXPROCS(t *testing.T) {
	m, err := parseGOMAXPROCS("tapstack=1, gvisor=2")
	if err != nil || m["tapstack"] != 1 || m["gvisor"] != 2 || len(m) != 2 {
		t.Fatalf("got %v, %v", m, err)
	}
	for _, bad := range []string{"tapstack", "tapstack=0", "tapstack=x", "nosuch=1"} {
		if _, err := parseGOMAXPROCS(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if m, err := parseGOMAXPROCS(""); err != nil || len(m) != 0 {
		t.Fatalf("empty: %v, %v", m, err)
	}
}
