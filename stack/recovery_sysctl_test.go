package stack_test

import (
	"strings"
	"testing"

	"github.com/tapstack/tapstack/stack"
)

// TestRecoverySysctls: the loss-recovery and SACK-compression knobs are set by their Linux
// names, read back, and a bad value is refused with an error that names
// the knob (and changes nothing).
func TestRecoverySysctls(t *testing.T) {
	st, err := stack.New(stack.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, k := range []struct{ name, def, good, bad string }{
		{"net.ipv4.tcp_recovery", "1", "0", "8"},
		{"net.ipv4.tcp_frto", "2", "0", "3"},
		{"net.ipv4.tcp_reordering", "3", "10", "0"},
		{"net.ipv4.tcp_max_reordering", "300", "1000", "-1"},
		{"net.ipv4.tcp_comp_sack_nr", "44", "0", "256"},
		{"net.ipv4.tcp_comp_sack_delay_ns", "1000000", "500000", "x"},
		{"net.ipv4.tcp_rcvbuf_low_rtt", "1000", "2000", "-5"},
	} {
		if v, err := st.Sysctl(k.name); err != nil || v != k.def {
			t.Errorf("%s = %q, %v; want the Linux default %s", k.name, v, err, k.def)
		}
		if err := st.SetSysctl(k.name, k.good); err != nil {
			t.Errorf("%s=%s: %v", k.name, k.good, err)
		}
		if v, _ := st.Sysctl(k.name); v != k.good {
			t.Errorf("%s reads %q after setting %s", k.name, v, k.good)
		}
		err := st.SetSysctl(k.name, k.bad)
		if err == nil || !strings.Contains(err.Error(), k.name) {
			t.Errorf("%s=%s: error %v, want one naming the knob", k.name, k.bad, err)
		}
		if v, _ := st.Sysctl(k.name); v != k.good {
			t.Errorf("%s reads %q after a refused value", k.name, v)
		}
	}
}
