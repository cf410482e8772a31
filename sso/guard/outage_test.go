package guard_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/egretair/egret/directory/dirtest"
	"github.com/egretair/egret/mailcore"
	"github.com/egretair/egret/sso/guard"
)

// While the database takes no writes but its reads still answer, as
// with the primary down and a replica up, sign-ins are checked, and a
// guesser is still locked out: the lock is held in memory until it ends.
func TestLockHeldInMemoryWhileTheDatabaseTakesNoWrites(t *testing.T) {
	reads := dirtest.Open(t, "sqlite")
	down := dirtest.Open(t, "sqlite")
	down.Close()
	clk := &clock{now: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)}
	g := guard.New(guard.Config{AccountLimit: 3, AddressLimit: 100, LockFor: 10 * time.Minute,
		BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond, Now: clk.Now,
		Read: func(ctx context.Context, fn func(*gorm.DB) error) error {
			return fn(reads.DB().WithContext(ctx))
		}}, down.DB(), slog.New(slog.DiscardHandler))
	ctx := context.Background()
	const ip = "192.0.2.7:40000"

	if _, err := g.Check(ctx, "crew1", ip); err != nil {
		t.Fatalf("first sign-in with writes down: %v, want it checked", err)
	}
	for range 3 {
		g.Failed(ctx, "crew1", ip)
	}
	if _, err := g.Check(ctx, "crew1", ip); !errors.Is(err, mailcore.ErrLocked) {
		t.Fatalf("after 3 failures with writes down: %v, want ErrLocked", err)
	}
	if _, err := g.Check(ctx, "crew2", "192.0.2.8:40000"); err != nil {
		t.Errorf("another user from another address: %v, want no lock", err)
	}
	clk.add(11 * time.Minute)
	if _, err := g.Check(ctx, "crew1", ip); err != nil {
		t.Errorf("after the lock's end: %v, want it lifted", err)
	}
}
