package netnstest

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

func selfNetns(t *testing.T) string {
	link, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	return link
}

func TestNamespaceLifecycle(t *testing.T) {
	Require(t)
	var name string
	t.Run("create", func(t *testing.T) {
		ns := New(t)
		name = ns.Name()
		if !strings.HasPrefix(name, "tsN") {
			t.Fatalf("name %q", name)
		}
		if _, err := os.Stat("/var/run/netns/" + name); err != nil {
			t.Fatal(err)
		}
		out, err := ns.Run("ip", "-o", "link", "show")
		if err != nil {
			t.Fatal(err)
		}
		if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 1 || !strings.Contains(out, "lo:") ||
			!strings.Contains(out, "UP") {
			t.Fatalf("want only lo, up, in a new namespace:\n%s", out)
		}
		tap, err := ns.OpenTAP("d0", 1)
		if err != nil {
			t.Fatal(err)
		}
		defer tap.Close()
		ns.AddrAdd("d0", "192.0.2.1/24")
		ns.LinkUp("d0")
		if out := ns.MustIP("-4", "addr", "show", "d0"); !strings.Contains(out, "192.0.2.1/24") {
			t.Fatalf("address not set:\n%s", out)
		}
		if _, err := ns.IP("link", "show", "nonexistent0"); err == nil {
			t.Fatal("IP did not report a failing command")
		}
	})
	if _, err := os.Stat("/var/run/netns/" + name); !os.IsNotExist(err) {
		t.Fatalf("namespace %s survived its test: %v", name, err)
	}
}

func TestDoRunsInsideAndComesBack(t *testing.T) {
	ns := New(t)
	host := selfNetns(t)
	var inside string
	if err := ns.Do(func() error { inside = selfNetns(t); return nil }); err != nil {
		t.Fatal(err)
	}
	if inside == host || inside == "" {
		t.Fatalf("Do ran in %s, host is %s", inside, host)
	}
	for range 20 { // no thread left behind in the namespace
		if got := selfNetns(t); got != host {
			t.Fatalf("thread in %s after Do", got)
		}
	}
	tap, err := ns.OpenTAP("", 2)
	if err != nil {
		t.Fatal(err)
	}
	defer tap.Close()
	if out := ns.MustIP("link", "show", tap.Name()); !strings.Contains(out, tap.Name()) {
		t.Fatalf("TAP %s not in the namespace:\n%s", tap.Name(), out)
	}
}

type fakeTB struct {
	testing.TB
	fatal, skip string
}

func (f *fakeTB) Helper()           {}
func (f *fakeTB) Fatal(args ...any) { f.fatal = fmt.Sprint(args...) }
func (f *fakeTB) Skip(args ...any)  { f.skip = fmt.Sprint(args...) }

func TestRequireSkipsOrFails(t *testing.T) {
	for _, tc := range []struct {
		name        string
		reason      string
		mustRun     bool
		fatal, skip bool
	}{
		{"all there", "", false, false, false},
		{"all there, required", "", true, false, false},
		{"not root", "not root", false, false, true},
		{"not root, required in CI", "not root", true, true, false},
		{"a tool missing", "no dnsmasq: apt-get install dnsmasq-base", false, false, true},
		{"a tool missing, required in CI", "no dnsmasq: apt-get install dnsmasq-base", true, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeTB{TB: t}
			require(f, tc.reason, tc.mustRun)
			if (f.fatal != "") != tc.fatal || (f.skip != "") != tc.skip {
				t.Fatalf("fatal %q skip %q", f.fatal, f.skip)
			}
			if msg := f.fatal + f.skip; msg != "" && !strings.Contains(msg, "run as root or set TAPSTACK_REQUIRE_NETNS=1 in CI") || !strings.Contains(msg, tc.reason) {
				t.Fatalf("message %q", msg)
			}
		})
	}
}
