package driver

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// pcapSnapLen is the capture length written in the file header: larger than
// any frame (a 64 KB GSO super-frame included), so records are never cut.
const pcapSnapLen = 262144

// PcapTee wraps a Link and records every frame read from it and written to
// it in pcap format (LinkTypeEthernet, or LinkTypeRaw over an L3Link, whose
// frames are bare IP packets; through gopacket/pcapgo), like
// tcpdump on the interface. Reads and writes may run concurrently; records
// are written whole and in order. GSO super-frames are recorded as one
// frame, as tcpdump shows them on an interface with offloads.
type PcapTee struct {
	Link
	mu     sync.Mutex
	w      *pcapgo.Writer
	errors atomic.Uint64
}

var (
	_ Link           = (*PcapTee)(nil)
	_ LargeFrameLink = (*PcapTee)(nil)
	_ GSOLink        = (*PcapTee)(nil)
)

// NewPcapTee writes the pcap file header to w and returns the tee.
func NewPcapTee(l Link, w io.Writer) (*PcapTee, error) {
	pw := pcapgo.NewWriter(w)
	linkType := layers.LinkTypeEthernet
	if IsL3(l) {
		linkType = layers.LinkTypeRaw // what tcpdump writes on a TUN
	}
	if err := pw.WriteFileHeader(pcapSnapLen, linkType); err != nil {
		return nil, fmt.Errorf("driver: pcap header: %w", err)
	}
	return &PcapTee{Link: l, w: pw}, nil
}

// ReadFrame reads from the wrapped link and records the frame.
func (t *PcapTee) ReadFrame(q int, b []byte) (int, error) {
	n, err := t.Link.ReadFrame(q, b)
	if err == nil {
		t.record(b[:n])
	}
	return n, err
}

// WriteFrame records the frame, then writes it to the wrapped link.
func (t *PcapTee) WriteFrame(q int, b []byte) error {
	t.record(b)
	return t.Link.WriteFrame(q, b)
}

// MaxFrameSize is the wrapped link's (see LargeFrameLink).
func (t *PcapTee) MaxFrameSize() int { return MaxFrameSize(t.Link) }

// L3 is the wrapped link's (see L3Link).
func (t *PcapTee) L3() bool { return IsL3(t.Link) }

// GSOMax is the wrapped link's (0 when it cannot segment).
func (t *PcapTee) GSOMax() int { return GSOMax(t.Link) }

// WriteGSO records the super-frame, then hands it to the wrapped link's
// WriteGSO; it fails with ErrNoGSO when that link cannot segment.
func (t *PcapTee) WriteGSO(q int, frame []byte, mss int) error {
	g, ok := t.Link.(GSOLink)
	if !ok || GSOMax(t.Link) == 0 {
		return ErrNoGSO
	}
	t.record(frame)
	return g.WriteGSO(q, frame, mss)
}

// WriteErrors counts records that could not be written to the pcap writer
// (the link itself is unaffected).
func (t *PcapTee) WriteErrors() uint64 { return t.errors.Load() }

// Unwrap returns the wrapped link.
func (t *PcapTee) Unwrap() Link { return t.Link }

func (t *PcapTee) record(frame []byte) {
	caplen := min(len(frame), pcapSnapLen)
	ci := gopacket.CaptureInfo{Timestamp: time.Now(), CaptureLength: caplen, Length: len(frame)}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.w.WritePacket(ci, frame[:caplen]); err != nil {
		t.errors.Add(1)
	}
}
