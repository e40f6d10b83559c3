package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestReportShowsRatesOfMovedCounters(t *testing.T) {
	prev := &snapshot{Counters: map[string]uint64{"TcpInSegs": 100, "TcpExtListenDrops": 5, "IpInReceives": 7}}
	cur := &snapshot{Counters: map[string]uint64{"TcpInSegs": 300, "TcpExtListenDrops": 5, "IpInReceives": 9}}
	var b bytes.Buffer
	report(&b, prev, cur, 2*time.Second, false)
	out := b.String()
	if !strings.Contains(out, "TcpInSegs") || !strings.Contains(out, " 100.0\n") {
		t.Errorf("TcpInSegs rate missing:\n%s", out)
	}
	if !strings.Contains(out, "IpInReceives") || !strings.Contains(out, " 1.0\n") {
		t.Errorf("IpInReceives rate missing:\n%s", out)
	}
	if strings.Contains(out, "ListenDrops") {
		t.Errorf("unchanged counter printed without -a:\n%s", out)
	}
	b.Reset()
	report(&b, prev, cur, 2*time.Second, true)
	if !strings.Contains(b.String(), "TcpExtListenDrops") {
		t.Errorf("-a should print every counter:\n%s", b.String())
	}
}
