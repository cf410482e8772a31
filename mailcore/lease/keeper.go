package lease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Keeper holds a lease for a member: it tries to acquire it while
// standby and renews it while active, and tells the member when it
// gains or loses it.
type Keeper struct {
	Lease Lease
	// Poll is how often a standby tries to acquire; zero means a
	// second.
	Poll time.Duration
	// Gained is called with the new fence once the lease is taken,
	// before the member serves. An error gives the lease back.
	Gained func(ctx context.Context, fence uint64) error
	// Lost is called once the member must stop writing.
	Lost func(cause string)
	Log  *slog.Logger

	mu     sync.Mutex
	fence  uint64    // 0 while standby
	tried  time.Time // start of the last renewal that got an answer
	failed bool      // the last attempt did not reach the database
}

// Status answers this member's view: its fence, 0 while standby.
func (k *Keeper) Status() (fence uint64, active bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.fence, k.fence != 0
}

// Holding answers nil while this member may write under fence. It
// fails when the lease went to another fence, and when no renewal has
// been tried for longer than the lease lives: a process paused that
// long may have been replaced, and must hear from the database first.
func (k *Keeper) Holding(fence uint64) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.fence != fence || fence == 0 {
		return ErrLost
	}
	if time.Since(k.tried) > k.Lease.TTL {
		return fmt.Errorf("lease %s: not renewed for %s", k.Lease.Name,
			time.Since(k.tried).Round(time.Millisecond))
	}
	return nil
}

// Drop makes the member standby at once, for a store that found a
// higher fence in its folder.
func (k *Keeper) Drop(cause string) {
	k.mu.Lock()
	was := k.fence
	k.fence = 0
	k.mu.Unlock()
	if was != 0 {
		k.Log.Warn("lease lost", "back", k.Lease.Name, "node", k.Lease.Holder,
			"fence", was, "cause", cause)
		k.Lost(cause)
	}
}

// Run keeps the lease until ctx ends, and then releases it.
func (k *Keeper) Run(ctx context.Context) error {
	poll := k.Poll
	if poll <= 0 {
		poll = time.Second
	}
	renew := max(k.Lease.TTL/5, 10*time.Millisecond)
	for {
		fence, active := k.Status()
		wait := poll
		if active {
			wait = renew
			k.renew(ctx, fence)
		} else {
			k.acquire(ctx)
			if _, active := k.Status(); active {
				wait = renew
			}
		}
		select {
		case <-ctx.Done():
			if fence, active := k.Status(); active {
				k.Drop("node stopping")
				rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				return k.Lease.Release(rctx, fence)
			}
			return nil
		case <-time.After(wait):
		}
	}
}

// acquire tries once to take the lease and serve.
func (k *Keeper) acquire(ctx context.Context) {
	start := time.Now()
	actx, cancel := context.WithTimeout(ctx, k.Lease.TTL/2)
	fence, err := k.Lease.Acquire(actx)
	cancel()
	if errors.Is(err, ErrHeld) {
		k.mu.Lock()
		k.failed = false
		k.mu.Unlock()
		return
	}
	if err != nil {
		// Said once per outage: a standby tries every second.
		k.mu.Lock()
		first := !k.failed
		k.failed = true
		k.mu.Unlock()
		if first {
			k.Log.Warn("lease not acquired", "back", k.Lease.Name,
				"node", k.Lease.Holder, "err", err)
		}
		return
	}
	k.mu.Lock()
	k.fence, k.tried, k.failed = fence, start, false
	k.mu.Unlock()
	if err := k.Gained(ctx, fence); err != nil {
		k.mu.Lock()
		k.fence = 0
		k.mu.Unlock()
		k.Log.Error("lease given back", "back", k.Lease.Name,
			"node", k.Lease.Holder, "fence", fence, "err", err)
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		k.Lease.Release(rctx, fence)
		return
	}
	k.Log.Info("lease acquired", "back", k.Lease.Name,
		"node", k.Lease.Holder, "fence", fence)
}

// renew extends the lease once. A database that does not answer
// leaves the member active (see the package comment).
func (k *Keeper) renew(ctx context.Context, fence uint64) {
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, k.Lease.TTL/2)
	err := k.Lease.Renew(rctx, fence)
	cancel()
	if errors.Is(err, ErrLost) {
		k.Drop("another node holds the lease")
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.fence != fence {
		return
	}
	// A renewal that failed for want of the database still counts as
	// tried: this process is running, and nobody can take the lease
	// without the database.
	k.tried = start
	if err != nil && !k.failed {
		k.Log.Warn("lease not renewed, serving on", "back", k.Lease.Name,
			"node", k.Lease.Holder, "fence", fence, "err", err)
	}
	if err == nil && k.failed {
		k.Log.Info("lease renewed again", "back", k.Lease.Name,
			"node", k.Lease.Holder, "fence", fence)
	}
	k.failed = err != nil
}

// Try makes one attempt to take the lease, for a member about to
// start: one that holds it serves from its first connection on.
func (k *Keeper) Try(ctx context.Context) {
	k.acquire(ctx)
}
