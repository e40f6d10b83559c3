package stack

import (
	"fmt"
	"sort"
	"strings"

	isysctl "github.com/tapstack/tapstack/internal/sysctl"
)

// sysctl is one knob, named as in Linux's /proc/sys (dots for slashes); each
// layer declares its own beside the fields they tune.
type sysctl = isysctl.Knob

// registry merges every layer's knobs. A knob two layers read (net.core.rmem_max,
// ip_local_port_range) is one field, declared by one layer.
func (s *Stack) registry() map[string]*sysctl {
	m := map[string]*sysctl{}
	for _, ks := range [][]isysctl.Knob{s.netdevSysctls.Knobs(), s.ipSysctls.Knobs(), s.tcpSysctls.Knobs(), s.udpSysctls.Knobs()} {
		for i := range ks {
			if _, dup := m[ks[i].Name]; dup {
				panic("tapstack: sysctl " + ks[i].Name + " declared twice")
			}
			m[ks[i].Name] = &ks[i]
		}
	}
	return m
}

// SetSysctl sets the knob with Linux name (e.g. "net.core.somaxconn", or
// "net/core/somaxconn") to value, written as in its /proc/sys file. An
// unknown name or a value out of range is an error and changes nothing.
func (s *Stack) SetSysctl(name, value string) error {
	k, err := s.knob(name)
	if err != nil {
		return err
	}
	return k.Set(value)
}

// Sysctl returns a knob's value as its /proc/sys file would print it.
func (s *Stack) Sysctl(name string) (string, error) {
	k, err := s.knob(name)
	if err != nil {
		return "", err
	}
	return k.Get(), nil
}

func (s *Stack) knob(name string) (*sysctl, error) {
	name = strings.ReplaceAll(strings.TrimSpace(name), "/", ".")
	k, ok := s.sysctls[name]
	if !ok {
		return nil, fmt.Errorf("sysctl %s: unknown name", name)
	}
	return k, nil
}

// SysctlNames lists every knob, sorted.
func (s *Stack) SysctlNames() []string {
	names := make([]string, 0, len(s.sysctls))
	for n := range s.sysctls {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
