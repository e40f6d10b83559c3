// Package clock forwards to the public package
// github.com/tapstack/tapstack/clock, where the clock now lives, so that the
// layers importing this path keep compiling unchanged. The types are
// aliases: a clock.Clock from either path is the same type. New code
// imports the public package.
package clock

import (
	"time"

	"github.com/tapstack/tapstack/clock"
)

type (
	// Clock is [clock.Clock].
	Clock = clock.Clock
	// Timer is [clock.Timer].
	Timer = clock.Timer
	// Virtual is [clock.Virtual].
	Virtual = clock.Virtual
)

// Real is [clock.Real].
func Real() Clock { return clock.Real() }

// NewVirtual is [clock.NewVirtual].
func NewVirtual(start time.Time) *Virtual { return clock.NewVirtual(start) }
