// Package testenv gathers what tapstack's tests and demonstrations use and
// the library itself never does: throwaway network namespaces with real
// kernel peers (netns, netnstest), a spoofed-SYN flooder (synflood), CPU
// pinning (cpupin), condition waits (testwait), the shared TCP checks
// (nettest) and the admin/metrics fixture (stacktest). The runtime parts
// of internal/ (clock, pkt, eventlog, siphash, sockwait, sysctl) stay
// beside it; nothing outside tests, examples and bench imports this tree.
package testenv
