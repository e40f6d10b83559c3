package eventlog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tapstack/tapstack/internal/clock"
)

func TestRateLimitedLines(t *testing.T) {
	var buf bytes.Buffer
	clk := clock.NewVirtual(time.Unix(0, 0))
	lg := New(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})), clk, time.Second)
	ev := lg.Event(slog.LevelWarn, "backlog overflow")
	for i := 0; i < 1000; i++ {
		ev.Log(slog.Int("shard", 0))
	}
	clk.Advance(1500 * time.Millisecond)
	ev.Log(slog.Int("shard", 1))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if a := testing.AllocsPerRun(100, func() { ev.Log(slog.Int("shard", 2)) }); a != 0 {
		t.Errorf("a suppressed Log allocates %v", a)
	}
	if len(lines) != 2 {
		t.Fatalf("want 2 lines, got %d:\n%s", len(lines), buf.String())
	}
	if lines[0] != `level=WARN msg="backlog overflow" shard=0 occurrences=1` {
		t.Errorf("first line %q", lines[0])
	}
	if lines[1] != `level=WARN msg="backlog overflow" shard=1 occurrences=1000` {
		t.Errorf("second line %q (999 suppressed + this one)", lines[1])
	}
}

func TestSilentWhenNil(t *testing.T) {
	var lg *Log = New(nil, nil, 0)
	ev := lg.Event(slog.LevelInfo, "x")
	ev.Log() // must not panic
	var nilEv *Event
	nilEv.Log()
	if a := testing.AllocsPerRun(100, func() { ev.Log() }); a != 0 {
		t.Errorf("silent Log allocates %v", a)
	}
}
