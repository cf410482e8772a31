package lease_test

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/egretair/egret/directory/dirtest"
	"github.com/egretair/egret/mailcore/lease"
)

// database answers a migrated MariaDB database for the test.
func database(t *testing.T) *sql.DB {
	t.Helper()
	dir := dirtest.Open(t, "mysql")
	db, err := dir.SQL()
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func TestLeaseAcquireRenewExpireTakeover(t *testing.T) {
	db := database(t)
	ctx := context.Background()
	ttl := 500 * time.Millisecond
	a := &lease.Lease{DB: db, Name: "b1", Holder: "b1a", TTL: ttl}
	b := &lease.Lease{DB: db, Name: "b1", Holder: "b1b", TTL: ttl}

	fa, err := a.Acquire(ctx)
	if err != nil || fa != 1 {
		t.Fatalf("first acquire = %d, %v; want fence 1", fa, err)
	}
	if _, err := b.Acquire(ctx); !errors.Is(err, lease.ErrHeld) {
		t.Fatalf("acquire of a live lease by another node = %v, want ErrHeld", err)
	}

	// Renewals keep it past its first lifetime.
	for range 4 {
		time.Sleep(ttl / 3)
		if err := a.Renew(ctx, fa); err != nil {
			t.Fatalf("renew: %v", err)
		}
	}
	if _, err := b.Acquire(ctx); !errors.Is(err, lease.ErrHeld) {
		t.Fatalf("acquire of a renewed lease = %v, want ErrHeld", err)
	}

	// Left alone, it lapses and the other member takes it.
	time.Sleep(ttl + 100*time.Millisecond)
	if st, err := a.Read(ctx); err != nil || st.Live || st.Holder != "b1a" {
		t.Fatalf("lapsed lease reads %+v, %v", st, err)
	}
	fb, err := b.Acquire(ctx)
	if err != nil || fb != fa+1 {
		t.Fatalf("takeover = %d, %v; want fence %d", fb, err, fa+1)
	}
	if err := a.Renew(ctx, fa); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("renew by the former holder = %v, want ErrLost", err)
	}
	st, err := a.Read(ctx)
	if err != nil || st.Holder != "b1b" || st.Fence != fb || !st.Live {
		t.Fatalf("lease after takeover reads %+v, %v", st, err)
	}

	// A member restarted under its own name takes its live lease back
	// at once, under a new fence.
	again, err := b.Acquire(ctx)
	if err != nil || again != fb+1 {
		t.Fatalf("re-acquire by the holder = %d, %v; want fence %d", again, err, fb+1)
	}
	if err := b.Renew(ctx, fb); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("renew under the old fence = %v, want ErrLost", err)
	}

	// A release lets the other member in without waiting.
	if err := b.Release(ctx, again); err != nil {
		t.Fatal(err)
	}
	if f, err := a.Acquire(ctx); err != nil || f != again+1 {
		t.Fatalf("acquire after release = %d, %v", f, err)
	}
}

func TestLeaseOneWinnerAmongRacers(t *testing.T) {
	db := database(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	wins := make(chan uint64, 8)
	for i := range 8 {
		wg.Go(func() {
			l := &lease.Lease{DB: db, Name: "b2", Holder: string(rune('a' + i)), TTL: 5 * time.Second}
			if f, err := l.Acquire(ctx); err == nil {
				wins <- f
			}
		})
	}
	wg.Wait()
	close(wins)
	var got []uint64
	for f := range wins {
		got = append(got, f)
	}
	if len(got) != 1 || got[0] != 1 {
		t.Fatalf("racing acquisitions won %v, want exactly one, fence 1", got)
	}
}

func TestKeeperHandsOverWhenTheHolderStops(t *testing.T) {
	db := database(t)
	ttl := 500 * time.Millisecond
	type event struct {
		node  string
		fence uint64
	}
	events := make(chan event, 8)
	keeper := func(name string) *lease.Keeper {
		return &lease.Keeper{
			Lease: lease.Lease{DB: db, Name: "b1", Holder: name, TTL: ttl},
			Poll:  50 * time.Millisecond,
			Gained: func(_ context.Context, f uint64) error {
				events <- event{name, f}
				return nil
			},
			Lost: func(string) { events <- event{name, 0} },
			Log:  slog.New(slog.DiscardHandler),
		}
	}
	ka, kb := keeper("b1a"), keeper("b1b")
	ctxA, stopA := context.WithCancel(context.Background())
	doneA := make(chan error, 1)
	go func() { doneA <- ka.Run(ctxA) }()
	if e := <-events; e != (event{"b1a", 1}) {
		t.Fatalf("first event %+v, want b1a gaining fence 1", e)
	}
	ctxB, stopB := context.WithCancel(context.Background())
	defer stopB()
	go kb.Run(ctxB)

	// The standby waits while the active renews.
	select {
	case e := <-events:
		t.Fatalf("event %+v while b1a holds the lease", e)
	case <-time.After(3 * ttl):
	}
	if err := ka.Holding(1); err != nil {
		t.Fatalf("active member not holding: %v", err)
	}

	stopA()
	if err := <-doneA; err != nil {
		t.Fatalf("release: %v", err)
	}
	want := []event{{"b1a", 0}, {"b1b", 2}}
	for _, w := range want {
		select {
		case e := <-events:
			if e != w {
				t.Fatalf("event %+v, want %+v", e, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no event, want %+v", w)
		}
	}
	if err := ka.Holding(1); err == nil {
		t.Fatal("stopped member still holding")
	}
	if f, active := kb.Status(); !active || f != 2 {
		t.Fatalf("standby status %d %v, want active under fence 2", f, active)
	}
}

func TestKeeperRefusesWritesAfterAPauseUntilItRenews(t *testing.T) {
	db := database(t)
	ttl := 300 * time.Millisecond
	lost := make(chan string, 1)
	k := &lease.Keeper{
		Lease:  lease.Lease{DB: db, Name: "b1", Holder: "b1a", TTL: ttl},
		Gained: func(context.Context, uint64) error { return nil },
		Lost:   func(cause string) { lost <- cause },
		Log:    slog.New(slog.DiscardHandler),
	}
	k.Try(context.Background())
	fence, active := k.Status()
	if !active || k.Holding(fence) != nil {
		t.Fatalf("after Try: fence %d, active %v, holding %v", fence, active, k.Holding(fence))
	}

	// No renewal for longer than the lease lives, as in a process
	// stopped by SIGSTOP: no writes, though nobody took the lease.
	time.Sleep(ttl + 50*time.Millisecond)
	if err := k.Holding(fence); err == nil {
		t.Fatal("holding after a pause longer than the lease")
	}

	// Another member takes the lapsed lease; the woken keeper's first
	// renewal finds out and stands by.
	other := &lease.Lease{DB: db, Name: "b1", Holder: "b1b", TTL: 5 * time.Second}
	if _, err := other.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go k.Run(ctx)
	select {
	case <-lost:
	case <-time.After(2 * time.Second):
		t.Fatal("the woken keeper did not give up the lease")
	}
	if _, active := k.Status(); active {
		t.Fatal("the woken keeper still active")
	}
}
