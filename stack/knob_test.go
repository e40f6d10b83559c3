package stack_test

import (
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tapstack/tapstack/internal/sysctl"
	"github.com/tapstack/tapstack/ipv4"
	"github.com/tapstack/tapstack/netdev"
	"github.com/tapstack/tapstack/stack"
	"github.com/tapstack/tapstack/tcp"
	"github.com/tapstack/tapstack/udp"
)

// layerSysctls are each layer's Sysctls struct beside the knobs it declares.
func layerSysctls() []struct {
	name   string
	fields any
	knobs  []sysctl.Knob
} {
	n, ip, t, u := netdev.NewSysctls(), ipv4.NewSysctls(), tcp.NewSysctls(), udp.NewSysctls()
	return []struct {
		name   string
		fields any
		knobs  []sysctl.Knob
	}{{"netdev", n, n.Knobs()}, {"ipv4", ip, ip.Knobs()}, {"tcp", t, t.Knobs()}, {"udp", u, u.Knobs()}}
}

// TestSysctlKnobsReachEveryField: every atomic field of every layer's
// Sysctls struct has a name (udp's pointers are the shared knobs tcp names).
func TestSysctlKnobsReachEveryField(t *testing.T) {
	for _, l := range layerSysctls() {
		named := map[uintptr]string{}
		for _, k := range l.knobs {
			for _, p := range k.Vals {
				named[reflect.ValueOf(p).Pointer()] = k.Name
			}
			if k.Text != nil {
				named[reflect.ValueOf(k.Text).Pointer()] = k.Name
			}
		}
		v := reflect.ValueOf(l.fields).Elem()
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			switch f.Type {
			case reflect.TypeFor[atomic.Int64](), reflect.TypeFor[atomic.Value]():
				if _, ok := named[v.Field(i).Addr().Pointer()]; !ok {
					t.Errorf("%s.Sysctls.%s has no sysctl name", l.name, f.Name)
				}
			case reflect.TypeFor[*atomic.Int64]():
				if l.name != "udp" {
					t.Errorf("%s.Sysctls.%s: a pointer knob outside udp's shared ones", l.name, f.Name)
				}
			default:
				t.Errorf("%s.Sysctls.%s: unexpected field type %s", l.name, f.Name, f.Type)
			}
		}
	}
}

// TestSysctlKnobWalk sets every knob through the stack to a valid value
// other than its default and reads it back, and refuses a value just out of
// bounds with an error naming the knob, leaving the value unchanged.
func TestSysctlKnobWalk(t *testing.T) {
	st, err := stack.New(stack.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var names []string
	for _, l := range layerSysctls() {
		for _, k := range l.knobs {
			names = append(names, k.Name)
			if k.Text != nil {
				walkText(t, st, k)
				continue
			}
			x := k.Min
			if k.Defaults[0] == k.Min {
				x = k.Max
			}
			set := func(x int64) (string, error) {
				s := strings.Repeat(strconv.FormatInt(x, 10)+" ", len(k.Vals))
				return strings.TrimSpace(s), st.SetSysctl(k.Name, s)
			}
			s, err := set(x)
			if err != nil {
				t.Errorf("SetSysctl(%s, %q): %v", k.Name, s, err)
				continue
			}
			want := strings.ReplaceAll(s, " ", "\t")
			if got, err := st.Sysctl(k.Name); err != nil || got != want {
				t.Errorf("Sysctl(%s) = %q, %v after setting %q", k.Name, got, err, s)
			}
			for _, bad := range []int64{k.Min - 1, k.Max + 1} {
				s, err := set(bad)
				if err == nil || !strings.Contains(err.Error(), k.Name) || !strings.Contains(err.Error(), "out of range") {
					t.Errorf("SetSysctl(%s, %q) = %v, want an out-of-range error naming the knob", k.Name, s, err)
				}
				if got, _ := st.Sysctl(k.Name); got != want {
					t.Errorf("refused SetSysctl(%s, %q) changed it to %q", k.Name, s, got)
				}
			}
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, st.SysctlNames()) {
		t.Errorf("SysctlNames() = %v\nthe layers declare %v", st.SysctlNames(), names)
	}
}

func walkText(t *testing.T, st *stack.Stack, k sysctl.Knob) {
	t.Helper()
	if err := st.SetSysctl(k.Name, "reno"); err != nil {
		t.Errorf("SetSysctl(%s, reno): %v", k.Name, err)
	}
	if got, _ := st.Sysctl(k.Name); got != "reno" {
		t.Errorf("Sysctl(%s) = %q after setting reno", k.Name, got)
	}
	for _, bad := range []string{"", "no-such-algorithm"} {
		if err := st.SetSysctl(k.Name, bad); err == nil || !strings.Contains(err.Error(), k.Name) {
			t.Errorf("SetSysctl(%s, %q) = %v, want an error naming the knob", k.Name, bad, err)
		}
	}
	if got, _ := st.Sysctl(k.Name); got != "reno" {
		t.Errorf("refused writes changed %s to %q", k.Name, got)
	}
}
