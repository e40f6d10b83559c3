// Package driver holds the link drivers: a TAP device (github.com/songgao/water,
// multi-queue), an in-memory pipe pair with impairment for tests, and a pcap
// tee. They all satisfy Link, the one interface the device layer sees.
package driver

import "net"

// Link is an Ethernet link with one or more queues. Each queue has its own
// reader (netdev runs one goroutine per queue); writes may come from any
// goroutine. Frames are whole Ethernet frames without FCS.
type Link interface {
	// Queues is the number of receive/transmit queues (≥ 1).
	Queues() int
	// ReadFrame blocks until a frame arrives on queue q and copies it into
	// b, returning its length. After Close it returns net.ErrClosed.
	ReadFrame(q int, b []byte) (int, error)
	// WriteFrame sends one frame on queue q (any valid q; the caller picks
	// its shard's queue). It does not retain b.
	WriteFrame(q int, b []byte) error
	// MTU is the largest IP packet the link carries (1500 for Ethernet).
	MTU() int
	// MAC is the hardware address the stack uses on this link.
	MAC() net.HardwareAddr
	// Close stops the link and unblocks every reader.
	Close() error
}
