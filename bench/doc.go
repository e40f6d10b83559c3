// Package bench holds the comparison harness: the same workloads against
// tapstack, gVisor netstack and the Linux kernel. See cmd/compare.
package bench
