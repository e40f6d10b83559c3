package netdev

import "sync/atomic"

// Sysctls are the device layer's live-tunable knobs, named after Linux's
// net.core sysctls. A change takes effect on the next frame or poll.
type Sysctls struct {
	MaxBacklog  atomic.Int64 // net.core.netdev_max_backlog: per-shard backlog bound (max+1 frames fit)
	DevWeight   atomic.Int64 // net.core.dev_weight: frames per backlog poll round
	Budget      atomic.Int64 // net.core.netdev_budget: frames per net_rx_action poll
	BudgetUsecs atomic.Int64 // net.core.netdev_budget_usecs: time per net_rx_action poll
}

// NewSysctls returns the Linux defaults.
func NewSysctls() *Sysctls {
	s := &Sysctls{}
	s.MaxBacklog.Store(1000)
	s.DevWeight.Store(64)
	s.Budget.Store(300)
	s.BudgetUsecs.Store(2000)
	return s
}
