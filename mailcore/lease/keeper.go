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
	// before the member serves: Status and Holding answer standby
	// until it returns nil. An error gives the lease back.
	Gained func(ctx context.Context, fence uint64) error
	// Lost is called once the member must stop writing.
	Lost func(cause string)
	// Check, when set, is called after every renewal while the member
	// holds the lease, to read the store folder's fence: an error
	// wrapping ErrLost (a newer holder wrote its fence) makes the
	// member stand by, any other error makes it give the lease up as
	// GiveUp does.
	Check func() error
	// Backoff is how long a member that could not serve the store
	// waits before it tries to take the lease again; zero means ten
	// seconds.
	Backoff time.Duration
	Log     *slog.Logger

	mu     sync.Mutex
	fence  uint64    // 0 while standby
	tried  time.Time // start of the last renewal that got an answer
	failed bool      // the last attempt did not reach the database
	resume time.Time // no acquisition before
}

// backoff answers Backoff or its default.
func (k *Keeper) backoff() time.Duration {
	if k.Backoff > 0 {
		return k.Backoff
	}
	return 10 * time.Second
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

// GiveUp makes the member standby at once, as Drop does, and lets the
// lease lapse now, so that the other member may take it; this one does
// not try to take it again for Backoff. It is for a member that cannot
// serve the store folder (its fence file is gone or damaged).
func (k *Keeper) GiveUp(cause string) {
	k.mu.Lock()
	was := k.fence
	k.resume = time.Now().Add(k.backoff())
	k.mu.Unlock()
	if was == 0 {
		return
	}
	k.Log.Error("lease given up", "back", k.Lease.Name, "node", k.Lease.Holder,
		"fence", was, "cause", cause, "retry_in", k.backoff())
	k.Drop(cause)
	k.release(was)
}

// release lets the lease held under fence lapse now, so that the other
// member need not wait out the TTL. A release that fails is logged:
// the lease then lapses on its own.
func (k *Keeper) release(fence uint64) {
	rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := k.Lease.Release(rctx, fence); err != nil {
		k.Log.Warn("lease not released, it lapses on its own", "back", k.Lease.Name,
			"node", k.Lease.Holder, "fence", fence, "err", err, "ttl", k.Lease.TTL)
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
			k.check(fence)
		} else if k.mayAcquire() {
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

// mayAcquire reports whether the back-off after a failure to serve
// has passed.
func (k *Keeper) mayAcquire() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return !time.Now().Before(k.resume)
}

// check reads the store folder's fence through Check while the member
// holds the lease under fence: a member cut off from the database
// learns of its successor there.
func (k *Keeper) check(fence uint64) {
	if k.Check == nil {
		return
	}
	if f, _ := k.Status(); f != fence {
		return
	}
	err := k.Check()
	switch {
	case err == nil:
	case errors.Is(err, ErrLost):
		k.Drop(err.Error())
	default:
		k.GiveUp(err.Error())
	}
}

// acquire tries once to take the lease and serve.
//
// After an outage of the database longer than a lease's term every
// lease has lapsed, its holder alive or not; whichever member reached
// the database first would take it, failing over a healthy active for
// nothing. So a standby that could not reach the database first sees
// it answer again, then leaves the lease alone for one more term: a
// live holder renews it within a fifth of that, and only a dead one's
// lease is still lapsed afterwards.
func (k *Keeper) acquire(ctx context.Context) {
	k.mu.Lock()
	recovering := k.failed
	k.mu.Unlock()
	if recovering {
		rctx, cancel := context.WithTimeout(ctx, k.Lease.TTL/2)
		_, err := k.Lease.Read(rctx)
		cancel()
		if err != nil {
			return
		}
		k.mu.Lock()
		k.failed = false
		k.resume = time.Now().Add(k.Lease.TTL)
		k.mu.Unlock()
		k.Log.Info("database answers again; the lease is left to its holder for one term",
			"back", k.Lease.Name, "node", k.Lease.Holder, "wait", k.Lease.TTL)
		return
	}
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
	k.failed = false
	k.mu.Unlock()
	// The member stays standby until the store serves under the new
	// fence: its heartbeat would otherwise draw the fronts' work, and
	// its gates let connections in, that the store still refuses.
	if err := k.Gained(ctx, fence); err != nil {
		// Tried again at once, a folder that cannot be served would
		// have the lease taken and given back every second.
		k.mu.Lock()
		k.resume = time.Now().Add(k.backoff())
		k.mu.Unlock()
		k.Log.Error("lease given back", "back", k.Lease.Name,
			"node", k.Lease.Holder, "fence", fence, "err", err,
			"retry_in", k.backoff())
		k.release(fence)
		return
	}
	k.mu.Lock()
	k.fence, k.tried = fence, start
	k.mu.Unlock()
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
		k.lost(ctx, fence)
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

// lost stands the member by after a renewal found the lease taken. A
// lease taken under this member's own name while it was renewing can
// only have been taken by another process with the same node.name,
// which is not supported: the two would take it from each other at
// every renewal. That is logged as such, and this member backs off.
func (k *Keeper) lost(ctx context.Context, fence uint64) {
	rctx, cancel := context.WithTimeout(ctx, k.Lease.TTL/2)
	st, err := k.Lease.Read(rctx)
	cancel()
	if err == nil && st.Holder == k.Lease.Holder && st.Fence != fence {
		k.mu.Lock()
		k.resume = time.Now().Add(k.backoff())
		k.mu.Unlock()
		k.Log.Error("another process holds the lease under this node's name",
			"back", k.Lease.Name, "node", k.Lease.Holder, "fence", fence,
			"its_fence", st.Fence, "retry_in", k.backoff(),
			"fix", "give each member of the back its own node.name")
		k.Drop("another process with the same node.name took the lease")
		return
	}
	k.Drop("another node holds the lease")
}

// Try makes one attempt to take the lease, for a member about to
// start: one that holds it serves from its first connection on.
func (k *Keeper) Try(ctx context.Context) {
	k.acquire(ctx)
}
