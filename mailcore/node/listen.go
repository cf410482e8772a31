package node

import (
	"context"
	"fmt"
	"net"
	"time"
)

// Listening adapts serve, which accepts on a listener until ctx ends, to
// a service run. The first run uses ln, bound before the node started;
// each later run binds again with again, or, when again is nil, on ln's
// address, since the failed run's listener is closed when it returns.
func Listening(ln net.Listener, again func() (net.Listener, error),
	serve func(ctx context.Context, ln net.Listener) error) func(context.Context) error {
	addr := ln.Addr()
	if again == nil {
		again = func() (net.Listener, error) {
			return net.Listen(addr.Network(), addr.String())
		}
	}
	first := ln
	return func(ctx context.Context) error {
		l := first
		first = nil
		if l == nil {
			var err error
			if l, err = again(); err != nil {
				return fmt.Errorf("listen on %s again: %w", addr, err)
			}
		}
		// Closed on every way out, a panic included, so the next
		// run can bind the address.
		defer l.Close()
		return serve(ctx, l)
	}
}

// Until runs serve, in the calling goroutine, until it returns; when ctx
// ends first, stop is called with grace to drain, and Until waits for
// serve to return. It answers serve's error, or stop's when asked to
// stop.
func Until(ctx context.Context, grace time.Duration, serve func() error, stop func(context.Context) error) error {
	done := make(chan struct{})
	stopped := make(chan error, 1)
	go func() {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), grace)
			defer cancel()
			stopped <- stop(sctx)
		case <-done:
			stopped <- nil
		}
	}()
	err := func() error {
		defer close(done)
		return serve()
	}()
	if serr := <-stopped; ctx.Err() != nil {
		return serr
	}
	return err
}
