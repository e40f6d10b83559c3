// Package nettest holds the checks the tcp and stack tests share on what
// users of Go's net package rely on.
package nettest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// DoneContext is a context that has already ended, and how.
type DoneContext struct {
	Name string
	Ctx  context.Context
	Err  error // context.Canceled or context.DeadlineExceeded
}

// DoneContexts returns a cancelled context and one past its deadline.
func DoneContexts() []DoneContext {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel := context.WithDeadline(context.Background(), time.Unix(1, 0))
	cancel() // the deadline had passed already: Err stays DeadlineExceeded
	return []DoneContext{{"canceled", canceled, context.Canceled}, {"deadline exceeded", expired, context.DeadlineExceeded}}
}

// CheckCtxDialErr reports how err differs from what net.Dialer returns
// when its context ends with want (context.Canceled or DeadlineExceeded):
// a dial *net.OpError to addr wrapping want, and for a deadline an
// "i/o timeout" that is a timeout net.Error and matches
// os.ErrDeadlineExceeded like a Conn's deadline errors. nil if it does not.
func CheckCtxDialErr(err error, addr string, want error) error {
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "dial" || oe.Addr == nil || oe.Addr.String() != addr || !errors.Is(err, want) {
		return fmt.Errorf("dial error %v (%T), want a dial *net.OpError to %s wrapping %v", err, err, addr, want)
	}
	var ne net.Error
	timeout := errors.As(err, &ne) && ne.Timeout()
	if deadline := want == context.DeadlineExceeded; timeout != deadline || errors.Is(err, os.ErrDeadlineExceeded) != deadline {
		return fmt.Errorf("dial error %v: Timeout() %v, matches os.ErrDeadlineExceeded %v; want both %v",
			err, timeout, errors.Is(err, os.ErrDeadlineExceeded), deadline)
	}
	return nil
}
