package sysctl

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
)

func TestKnobSet(t *testing.T) {
	var a, b, c atomic.Int64
	var text atomic.Value
	one := Int("x.one", &a, 5, 0, 10)
	vec := Vector("x.vec", []*atomic.Int64{&b, &c}, []int64{1, 2}, 1, 100)
	str := String("x.str", &text, "on", func(s string) error {
		if s != "on" && s != "off" {
			return errBad
		}
		return nil
	})
	ks := []Knob{one, vec, str}
	Reset(ks)
	for _, tc := range []struct {
		k              *Knob
		value, wantErr string
		want           string // Get afterwards
	}{
		{&one, "5", "", "5"},
		{&one, " 7 ", "", "7"},
		{&one, "11", "x.one=\"11\": 11 out of range [0, 10]", "7"},
		{&one, "-1", "out of range", "7"},
		{&one, "seven", "\"seven\" is not an integer", "7"},
		{&one, "1 2", "want 1 integer(s)", "7"},
		{&vec, "3 4", "", "3\t4"},
		{&vec, "4\t4", "", "4\t4"},
		{&vec, "5 4", "x.vec=\"5 4\": values must not decrease", "4\t4"},
		{&vec, "0 4", "out of range", "4\t4"},
		{&vec, "4", "want 2 integer(s)", "4\t4"},
		{&str, " off ", "", "off"},
		{&str, "maybe", "x.str=\"maybe\": bad", "off"},
	} {
		err := tc.k.Set(tc.value)
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s.Set(%q) = %v, want error containing %q", tc.k.Name, tc.value, err, tc.wantErr)
		}
		if got := tc.k.Get(); got != tc.want {
			t.Errorf("after %s.Set(%q): Get() = %q, want %q", tc.k.Name, tc.value, got, tc.want)
		}
	}
}

var errBad = errors.New("bad")
