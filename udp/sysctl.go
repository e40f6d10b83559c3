package udp

import (
	"sync/atomic"

	"github.com/tapstack/tapstack/internal/sysctl"
)

// Sysctls are UDP's knobs and the shared ones it reads. The shared ones
// (net.core.rmem_max, wmem_max, ip_local_port_range) are pointers to the
// fields the stack's other protocols read too, and named there: Knobs names
// only UDP's own.
type Sysctls struct {
	RmemDefault atomic.Int64 // SO_RCVBUF of a new socket
	WmemDefault atomic.Int64 // SO_SNDBUF of a new socket

	// NoPMTUDisc: 0 gives a new socket PMTUDiscWant, anything else
	// PMTUDiscDont (inet_create).
	NoPMTUDisc atomic.Int64

	RmemMax, WmemMax  *atomic.Int64 // net.core.rmem_max, wmem_max: SO_RCVBUF/SO_SNDBUF ceilings
	PortLow, PortHigh *atomic.Int64 // net.ipv4.ip_local_port_range
}

// Knobs names UDP's own fields with their Linux defaults and bounds.
func (s *Sysctls) Knobs() []sysctl.Knob {
	return []sysctl.Knob{
		sysctl.Int("net.core.rmem_default", &s.RmemDefault, 212992, 2304, sysctl.MaxInt/2),
		sysctl.Int("net.core.wmem_default", &s.WmemDefault, 212992, 2304, sysctl.MaxInt/2),
		sysctl.Int("net.ipv4.ip_no_pmtu_disc", &s.NoPMTUDisc, 0, 0, 3),
	}
}

// NewSysctls returns Linux's defaults, with shared knobs of their own.
func NewSysctls() *Sysctls {
	s := &Sysctls{RmemMax: new(atomic.Int64), WmemMax: new(atomic.Int64), PortLow: new(atomic.Int64), PortHigh: new(atomic.Int64)}
	sysctl.Reset(s.Knobs())
	s.RmemMax.Store(212992)
	s.WmemMax.Store(212992)
	s.PortLow.Store(32768)
	s.PortHigh.Store(60999)
	return s
}
