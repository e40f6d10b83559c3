package driver

import (
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Classic libpcap file format (the one tcpdump -w writes and
// gopacket/pcapgo.NewReader reads): microsecond timestamps, Ethernet.
const (
	pcapMagicMicros      = 0xa1b2c3d4
	pcapSnapLen          = 262144
	pcapLinkTypeEthernet = 1
)

// PcapTee wraps a Link and records every frame read from it and written to
// it in pcap format (LinkTypeEthernet), like tcpdump on the interface. Reads
// and writes may run concurrently; records are written whole and in order.
//
// It writes the pcap format itself rather than through gopacket/pcapgo:
// pcapgo's package also holds an AF_PACKET capture that needs
// golang.org/x/net, which the module does not require.
type PcapTee struct {
	Link
	mu     sync.Mutex
	w      io.Writer
	rec    [16]byte
	errors atomic.Uint64
}

var _ Link = (*PcapTee)(nil)

// NewPcapTee writes the pcap file header to w and returns the tee.
func NewPcapTee(l Link, w io.Writer) (*PcapTee, error) {
	var hdr [24]byte
	binary.LittleEndian.PutUint32(hdr[0:], pcapMagicMicros)
	binary.LittleEndian.PutUint16(hdr[4:], 2) // version 2.4
	binary.LittleEndian.PutUint16(hdr[6:], 4)
	binary.LittleEndian.PutUint32(hdr[16:], pcapSnapLen)
	binary.LittleEndian.PutUint32(hdr[20:], pcapLinkTypeEthernet)
	if _, err := w.Write(hdr[:]); err != nil {
		return nil, fmt.Errorf("driver: pcap header: %w", err)
	}
	return &PcapTee{Link: l, w: w}, nil
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

// WriteErrors counts records that could not be written to the pcap writer
// (the link itself is unaffected).
func (t *PcapTee) WriteErrors() uint64 { return t.errors.Load() }

// Unwrap returns the wrapped link.
func (t *PcapTee) Unwrap() Link { return t.Link }

func (t *PcapTee) record(frame []byte) {
	now := time.Now()
	caplen := min(len(frame), pcapSnapLen)
	t.mu.Lock()
	defer t.mu.Unlock()
	binary.LittleEndian.PutUint32(t.rec[0:], uint32(now.Unix()))
	binary.LittleEndian.PutUint32(t.rec[4:], uint32(now.Nanosecond()/1000))
	binary.LittleEndian.PutUint32(t.rec[8:], uint32(caplen))
	binary.LittleEndian.PutUint32(t.rec[12:], uint32(len(frame)))
	if _, err := t.w.Write(t.rec[:]); err != nil {
		t.errors.Add(1)
		return
	}
	if _, err := t.w.Write(frame[:caplen]); err != nil {
		t.errors.Add(1)
	}
}
