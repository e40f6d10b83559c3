package ipv4

import (
	"github.com/tapstack/tapstack/netdev"
	"github.com/tapstack/tapstack/wire"
)

// New makes the IPv4 layer of dev and registers its ARP (0x0806) and IPv4
// (0x0800) handlers; call it before dev.Start, then AddAddress and Start.
func New(dev *netdev.Device, cfg Config) *Layer {
	l := newLayer(dev, cfg)
	dev.Handle(wire.EtherTypeARP, l.arpInput)
	dev.Handle(wire.EtherTypeIPv4, l.ipInput)
	return l
}
