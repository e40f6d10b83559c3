package pkt

import "errors"

// ErrNoGSO is the one error for a GSO super-packet that cannot be segmented,
// kept here because this is the one package every layer, TCP included, sees.
// The link returns it when it has no TSO (driver.ErrNoGSO and
// netdev.ErrNoGSO are this value; the text names the layer that returns
// it). ipv4.ErrNoGSO and tcp.ErrNoGSO wrap it: they add that the buffer was
// handed back unsent, which the link's error does not promise, so they
// stay separate values that still match this one with errors.Is.
var ErrNoGSO = errors.New("driver: link does not support GSO")
