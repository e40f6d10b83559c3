// Package sysctl is the shape of a knob that each layer declares beside the
// field it tunes: its Linux name (/proc/sys with dots for slashes), its
// default and the bounds Linux enforces, so that the stack only merges the
// layers' lists. Most knobs hold one integer; tcp_rmem, tcp_wmem and
// ip_local_port_range hold a vector written as space-separated integers, like
// their /proc files; tcp_congestion_control holds a string.
package sysctl

import (
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
)

// MaxInt is INT_MAX, the ceiling of Linux's int sysctls.
const MaxInt = 1<<31 - 1

// Knob is one sysctl pointing at the field (or fields, for a vector) it
// tunes. Exactly one of Vals and Text is set.
type Knob struct {
	Name string

	Vals     []*atomic.Int64
	Defaults []int64 // one per field of Vals
	Min, Max int64   // bounds of every element
	// Check validates a whole vector (order constraints) before it is stored.
	Check func(v []int64) error

	Text        *atomic.Value // holds a string
	TextDefault string
	// CheckText validates a string before it is stored.
	CheckText func(string) error
}

// Int is a one-integer knob.
func Int(name string, v *atomic.Int64, def, min, max int64) Knob {
	return Knob{Name: name, Vals: []*atomic.Int64{v}, Defaults: []int64{def}, Min: min, Max: max}
}

// Vector is a knob of several integers, each within [min, max], that must
// not decrease (tcp_rmem's min ≤ default ≤ max, ip_local_port_range's low ≤
// high).
func Vector(name string, v []*atomic.Int64, defs []int64, min, max int64) Knob {
	return Knob{Name: name, Vals: v, Defaults: defs, Min: min, Max: max, Check: nondecreasing}
}

// String is a string knob; check refuses a value Linux would refuse.
func String(name string, v *atomic.Value, def string, check func(string) error) Knob {
	return Knob{Name: name, Text: v, TextDefault: def, CheckText: check}
}

func nondecreasing(v []int64) error {
	for i := 1; i < len(v); i++ {
		if v[i] < v[i-1] {
			return fmt.Errorf("values must not decrease: %v", v)
		}
	}
	return nil
}

// Reset stores the defaults of every knob in ks.
func Reset(ks []Knob) {
	for _, k := range ks {
		if k.Text != nil {
			k.Text.Store(k.TextDefault)
			continue
		}
		for i, p := range k.Vals {
			p.Store(k.Defaults[i])
		}
	}
}

// Set parses value as the knob's /proc/sys file would take it and stores
// it; a value that is malformed, out of range or refused by a check is an
// error naming the knob and changes nothing.
func (k *Knob) Set(value string) error {
	if k.Text != nil {
		v := strings.TrimSpace(value)
		if k.CheckText != nil {
			if err := k.CheckText(v); err != nil {
				return fmt.Errorf("sysctl %s=%q: %w", k.Name, value, err)
			}
		}
		k.Text.Store(v)
		return nil
	}
	fields := strings.Fields(value)
	if len(fields) != len(k.Vals) {
		return fmt.Errorf("sysctl %s=%q: want %d integer(s)", k.Name, value, len(k.Vals))
	}
	v := make([]int64, len(fields))
	for i, f := range fields {
		x, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return fmt.Errorf("sysctl %s=%q: %q is not an integer", k.Name, value, f)
		}
		if x < k.Min || x > k.Max {
			return fmt.Errorf("sysctl %s=%q: %d out of range [%d, %d]", k.Name, value, x, k.Min, k.Max)
		}
		v[i] = x
	}
	if k.Check != nil {
		if err := k.Check(v); err != nil {
			return fmt.Errorf("sysctl %s=%q: %w", k.Name, value, err)
		}
	}
	for i, x := range v {
		k.Vals[i].Store(x)
	}
	return nil
}

// Get returns the value as the knob's /proc/sys file prints it (a vector's
// elements separated by tabs).
func (k *Knob) Get() string {
	if k.Text != nil {
		s, _ := k.Text.Load().(string)
		return s
	}
	parts := make([]string, len(k.Vals))
	for i, p := range k.Vals {
		parts[i] = strconv.FormatInt(p.Load(), 10)
	}
	return strings.Join(parts, "\t")
}
