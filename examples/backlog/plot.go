package main

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/tapstack/tapstack/stack"
)

// sampleEvery is the recorder's sampling period.
const sampleEvery = 50 * time.Millisecond

// sample is one observation of the listener and the counters.
type sample struct {
	t             time.Duration // since the recorder started
	synq, acceptq int
	listenDrops   uint64
	cookiesSent   uint64
	reqQFullDrop  uint64
}

// stepMark is a step boundary on the time axis.
type stepMark struct {
	t     time.Duration
	label string
}

// span is an interval to shade, e.g. while a flood runs.
type span struct {
	from, to time.Duration
	label    string
}

type series struct {
	samples []sample
	marks   []stepMark
	spans   []span
}

func (s *series) duration() time.Duration {
	if len(s.samples) == 0 {
		return 0
	}
	return s.samples[len(s.samples)-1].t
}

// recorder samples the listener every sampleEvery until stop.
type recorder struct {
	mu    sync.Mutex
	s     series
	start time.Time
	quit  chan struct{}
	done  chan struct{}
}

func startRecorder(st *stack.Stack, ln *stack.Listener) *recorder {
	r := &recorder{start: time.Now(), quit: make(chan struct{}), done: make(chan struct{})}
	take := func() {
		synq, acceptq := ln.QueueLens()
		stats := st.Stats()
		get := func(name string) uint64 { v, _ := stats.Get(name); return v }
		sm := sample{t: time.Since(r.start), synq: synq, acceptq: acceptq,
			listenDrops: get("TcpExtListenDrops"), cookiesSent: get("TcpExtSyncookiesSent"),
			reqQFullDrop: get("TcpExtTCPReqQFullDrop")}
		r.mu.Lock()
		r.s.samples = append(r.s.samples, sm)
		r.mu.Unlock()
	}
	take()
	go func() {
		defer close(r.done)
		tick := time.NewTicker(sampleEvery)
		defer tick.Stop()
		for {
			select {
			case <-r.quit:
				take()
				return
			case <-tick.C:
				take()
			}
		}
	}()
	return r
}

// mark records a step boundary now.
func (r *recorder) mark(label string) {
	r.mu.Lock()
	r.s.marks = append(r.s.marks, stepMark{time.Since(r.start), label})
	r.mu.Unlock()
}

// spanStart opens a shaded interval now; the returned func closes it.
func (r *recorder) spanStart(label string) (end func()) {
	from := time.Since(r.start)
	return func() {
		r.mu.Lock()
		r.s.spans = append(r.s.spans, span{from, time.Since(r.start), label})
		r.mu.Unlock()
	}
}

// maxSynqSinceMark is the largest SYN queue seen since the last mark.
func (r *recorder) maxSynqSinceMark() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var from time.Duration
	if n := len(r.s.marks); n > 0 {
		from = r.s.marks[n-1].t
	}
	m := 0
	for _, s := range r.s.samples {
		if s.t >= from {
			m = max(m, s.synq)
		}
	}
	return m
}

func (r *recorder) stop() series {
	close(r.quit)
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.s
}

// Plot geometry (SVG user units).
const (
	plotW, plotH     = 1000, 720
	marginL, marginR = 80, 200
	panelTop1        = 100
	panelH           = 240
	panelGap         = 90
	panelTop2        = panelTop1 + panelH + panelGap
)

// writePlot draws two panels over the same time axis: the queue lengths
// (linear) and the cumulative drop/cookie counters (log scale), with the
// step boundaries as dashed verticals.
func writePlot(w io.Writer, s series, backlog int) error {
	bw := bufio.NewWriter(w)
	p := &svg{w: bw}
	dur := max(s.duration().Seconds(), 1)
	x := func(t time.Duration) float64 { return marginL + t.Seconds()/dur*(plotW-marginL-marginR) }
	right := float64(plotW - marginR)

	p.printf(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	p.printf(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="13">`+"\n", plotW, plotH, plotW, plotH)
	p.printf(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	p.text(plotW/2, 28, "middle", 18, "bold", fmt.Sprintf("tapstack listen backlogs: backlog %d, sampled every %v", backlog, sampleEvery))
	var steps []string
	for _, m := range s.marks {
		steps = append(steps, m.label)
	}
	p.text(plotW/2, 52, "middle", 13, "normal", strings.Join(steps, "   ·   "))

	// Shaded intervals (the floods) behind both panels.
	for _, sp := range s.spans {
		x0, x1 := x(sp.from), x(sp.to)
		for _, top := range []float64{panelTop1, panelTop2} {
			p.printf(`<rect x="%.1f" y="%.1f" width="%.1f" height="%d" fill="#fde8e8"/>`+"\n", x0, top, x1-x0, panelH)
		}
		p.text((x0+x1)/2, panelTop1+panelH+54, "middle", 11, "normal", sp.label)
	}

	// Panel 1: queue lengths.
	qmax := backlog + 2
	for _, sm := range s.samples {
		qmax = max(qmax, sm.synq+1, sm.acceptq+1)
	}
	y1 := func(v float64) float64 { return panelTop1 + panelH - v/float64(qmax)*panelH }
	p.frame(panelTop1, "queue length (sockets)")
	for _, v := range niceTicks(float64(qmax)) {
		p.hTick(y1(v), fmt.Sprintf("%g", v))
	}
	p.refLine(y1(float64(backlog)), right, fmt.Sprintf("backlog %d: SYN queue bound", backlog))
	p.refLine(y1(float64(backlog+1)), right, fmt.Sprintf("backlog+1 = %d: accept queue full", backlog+1))
	p.line(s.samples, x, func(sm sample) float64 { return y1(float64(sm.acceptq)) }, "#1f77b4", 2.2, "")
	p.line(s.samples, x, func(sm sample) float64 { return y1(float64(sm.synq)) }, "#ff7f0e", 2.2, "")
	p.legend(panelTop1+10, []legendItem{{"#1f77b4", "accept queue (ss Recv-Q)"}, {"#ff7f0e", "SYN queue (request socks)"}})

	// Panel 2: counters, log scale (log10(1+v)).
	var cmax uint64 = 10
	for _, sm := range s.samples {
		cmax = max(cmax, sm.listenDrops, sm.cookiesSent, sm.reqQFullDrop)
	}
	decades := math.Ceil(math.Log10(float64(cmax) + 1))
	y2 := func(v uint64) float64 { return panelTop2 + panelH - math.Log10(float64(v)+1)/decades*panelH }
	p.frame(panelTop2, "cumulative count (log scale)")
	for d := 0.0; d <= decades; d++ {
		v := math.Pow(10, d)
		label := humanCount(v)
		if d == 0 {
			v, label = 0, "0"
		}
		p.hTick(y2(uint64(v)), label)
	}
	// ReqQFullDrop is also counted in ListenDrops: draw it wide underneath
	// and ListenDrops dashed on top, so both show where they coincide.
	p.line(s.samples, x, func(sm sample) float64 { return y2(sm.reqQFullDrop) }, "#9467bd", 5, "")
	p.line(s.samples, x, func(sm sample) float64 { return y2(sm.listenDrops) }, "#d62728", 2, "6,4")
	p.line(s.samples, x, func(sm sample) float64 { return y2(sm.cookiesSent) }, "#2ca02c", 2.2, "")
	p.legend(panelTop2+10, []legendItem{{"#d62728", "TcpExtListenDrops"}, {"#9467bd", "TcpExtTCPReqQFullDrop"},
		{"#2ca02c", "TcpExtSyncookiesSent"}})
	p.text(float64(plotW-marginR+12), panelTop2+130, "start", 10, "normal", "(ReqQFullDrop is counted")
	p.text(float64(plotW-marginR+12), panelTop2+144, "start", 10, "normal", "in ListenDrops too)")

	// Time axis under each panel, step boundaries across both.
	step := niceStep(dur)
	for _, top := range []float64{panelTop1, panelTop2} {
		for t := 0.0; t <= dur+1e-9; t += step {
			xx := x(time.Duration(t * float64(time.Second)))
			p.printf(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", xx, top+panelH, xx, top+panelH+5)
			p.text(xx, top+panelH+19, "middle", 12, "normal", fmt.Sprintf("%g", t))
		}
		p.text((marginL+right)/2, top+panelH+38, "middle", 13, "normal", "time since start (s)")
	}
	for _, m := range s.marks {
		xx := x(m.t)
		p.printf(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#555" stroke-dasharray="5,4"/>`+"\n", xx, float64(panelTop1-12), xx, float64(panelTop2+panelH))
		n, _, _ := strings.Cut(m.label, ":")
		p.text(xx+4, panelTop1-2, "start", 12, "bold", "step "+n)
	}
	p.printf("</svg>\n")
	if p.err != nil {
		return p.err
	}
	return bw.Flush()
}

type svg struct {
	w   io.Writer
	err error
}

func (p *svg) printf(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

func (p *svg) text(x, y float64, anchor string, size int, weight, s string) {
	p.printf(`<text x="%.1f" y="%.1f" text-anchor="%s" font-size="%d" font-weight="%s">%s</text>`+"\n", x, y, anchor, size, weight, html.EscapeString(s))
}

// frame draws a panel's box and its rotated y-axis title.
func (p *svg) frame(top float64, ytitle string) {
	p.printf(`<rect x="%d" y="%.1f" width="%d" height="%d" fill="none" stroke="black"/>`+"\n", marginL, top, plotW-marginL-marginR, panelH)
	cy := top + panelH/2
	p.printf(`<text x="22" y="%.1f" text-anchor="middle" font-size="13" transform="rotate(-90 22 %.1f)">%s</text>`+"\n", cy, cy, html.EscapeString(ytitle))
}

func (p *svg) hTick(y float64, label string) {
	p.printf(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e3e3e3"/>`+"\n", marginL, y, plotW-marginR, y)
	p.printf(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="black"/>`+"\n", marginL-5, y, marginL, y)
	p.text(marginL-8, y+4, "end", 12, "normal", label)
}

// refLine is a dotted horizontal reference with its label just above it,
// at the right end inside the panel.
func (p *svg) refLine(y, right float64, label string) {
	p.printf(`<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#888" stroke-dasharray="2,3"/>`+"\n", marginL, y, right, y)
	p.text(right-6, y-4, "end", 11, "normal", label)
}

// line draws a series as a polyline.
func (p *svg) line(ss []sample, x func(time.Duration) float64, y func(sample) float64, color string, width float64, dash string) {
	var b strings.Builder
	for _, s := range ss {
		fmt.Fprintf(&b, "%.1f,%.1f ", x(s.t), y(s))
	}
	if dash != "" {
		dash = fmt.Sprintf(` stroke-dasharray="%s"`, dash)
	}
	p.printf(`<polyline fill="none" stroke="%s" stroke-width="%.1f"%s stroke-linejoin="round" points="%s"/>`+"\n",
		color, width, dash, strings.TrimSpace(b.String()))
}

type legendItem struct{ color, label string }

func (p *svg) legend(top float64, items []legendItem) {
	x := float64(plotW - marginR + 12)
	for i, it := range items {
		y := top + 40 + float64(i)*20
		p.printf(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="3"/>`+"\n", x, y, x+22, y, it.color)
		p.text(x+28, y+4, "start", 11, "normal", it.label)
	}
}

// niceTicks returns 0 and round values up to top.
func niceTicks(top float64) []float64 {
	step := niceStep(top)
	var t []float64
	for v := 0.0; v <= top+1e-9; v += step {
		t = append(t, v)
	}
	return t
}

// niceStep picks 1, 2 or 5 × 10^k so that span has 4 to 10 steps.
func niceStep(span float64) float64 {
	for mag := 1.0; ; mag *= 10 {
		for _, m := range []float64{1, 2, 5} {
			if span/(m*mag) <= 10 {
				return m * mag
			}
		}
	}
}

func humanCount(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%gk", v/1e3)
	}
	return fmt.Sprintf("%g", v)
}
