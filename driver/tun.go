package driver

import (
	"net"

	"github.com/songgao/water"
)

// TUN is a Linux TUN device (IFF_TUN|IFF_NO_PI) opened through
// github.com/songgao/water, one file descriptor per queue: an L3Link whose
// frames are bare IPv4 or IPv6 packets. The kernel gives the interface no
// hardware address and IFF_POINTOPOINT|IFF_NOARP (tun_net_init), so neither
// side resolves neighbours. Like a TAP, the device lives in the network
// namespace of the thread that called OpenTUN and disappears on Close.
type TUN struct {
	waterLink
}

var _ L3Link = (*TUN)(nil)

// OpenTUN creates (or attaches to) the TUN device name with the given number
// of queues (IFF_MULTI_QUEUE when queues > 1), in the calling thread's
// network namespace. An empty name lets the kernel pick one (tunN).
func OpenTUN(name string, queues int) (*TUN, error) {
	t := &TUN{}
	if err := t.open("tun", water.TUN, name, queues); err != nil {
		return nil, err
	}
	return t, nil
}

// MAC is nil: a TUN has no hardware address (dev->addr_len 0).
func (t *TUN) MAC() net.HardwareAddr { return nil }

// L3 is true: frames are bare IP packets, without the 4-byte packet
// information header (IFF_NO_PI).
func (t *TUN) L3() bool { return true }
