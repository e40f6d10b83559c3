package netdev

import (
	"sync/atomic"

	"github.com/tapstack/tapstack/internal/sysctl"
)

// Sysctls are the device layer's live-tunable knobs, named after Linux's
// net.core sysctls. A change takes effect on the next frame or poll.
type Sysctls struct {
	MaxBacklog  atomic.Int64 // per-shard backlog bound (max+1 frames fit)
	DevWeight   atomic.Int64 // frames per backlog poll round
	Budget      atomic.Int64 // frames per net_rx_action poll
	BudgetUsecs atomic.Int64 // time per net_rx_action poll
}

// Knobs names each field with its Linux default and bounds.
func (s *Sysctls) Knobs() []sysctl.Knob {
	return []sysctl.Knob{
		sysctl.Int("net.core.netdev_max_backlog", &s.MaxBacklog, 1000, 0, 1<<24),
		sysctl.Int("net.core.dev_weight", &s.DevWeight, 64, 1, 1<<16),
		sysctl.Int("net.core.netdev_budget", &s.Budget, 300, 1, 1<<20),
		sysctl.Int("net.core.netdev_budget_usecs", &s.BudgetUsecs, 2000, 0, 1<<24),
	}
}

// NewSysctls returns the Linux defaults.
func NewSysctls() *Sysctls {
	s := &Sysctls{}
	sysctl.Reset(s.Knobs())
	return s
}
