package guard_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/egretair/egret/directory/dirtest"
	"github.com/egretair/egret/mailcore"
	"github.com/egretair/egret/mailcore/imapd"
	"github.com/egretair/egret/mailcore/store"
	"github.com/egretair/egret/sso/guard"
)

// oneUser is a directory of one account, "crew1" with "right-pass".
type oneUser struct{}

func (oneUser) LookupAddress(context.Context, string) (mailcore.Account, error) {
	return mailcore.Account{}, mailcore.ErrNoAccount
}

func (oneUser) Authenticate(_ context.Context, user, pass string) (mailcore.Account, error) {
	if user == "crew1" && pass == "right-pass" {
		return mailcore.Account{ID: "acct-crew1", Login: "crew1"}, nil
	}
	return mailcore.Account{}, mailcore.ErrBadCredentials
}

// clock is a time the test moves by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestWrongIMAPPasswordsLockTheAccountForAWhile(t *testing.T) {
	dir := dirtest.Open(t, "sqlite")
	clk := &clock{now: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)}
	quiet := slog.New(slog.DiscardHandler)
	g := guard.New(guard.Config{AccountLimit: 3, AddressLimit: 100, LockFor: 10 * time.Minute,
		BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond, Now: clk.Now}, dir.DB(), quiet)
	st, err := store.Open(t.TempDir(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv := imapd.New(imapd.Config{Guard: g}, oneUser{}, st, quiet)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()

	login := func(pass string) error {
		c, err := imapclient.DialInsecure(ln.Addr().String(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.Login("crew1", pass).Wait()
	}

	for i := range 3 {
		if err := login("wrong"); err == nil {
			t.Fatalf("wrong password %d accepted", i+1)
		}
	}
	locked := login("right-pass")
	if locked == nil {
		t.Fatal("the right password worked while the account was locked")
	}
	locks, err := guard.Lockouts(context.Background(), dir.DB(), clk.Now())
	if err != nil || len(locks) != 1 || locks[0].Subject != "user:crew1" {
		t.Fatalf("lockouts: %+v %v", locks, err)
	}

	// An unknown user after as many failures gets the same answer.
	unknownErr := func() error {
		c, err := imapclient.DialInsecure(ln.Addr().String(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.Login("nobody", "x").Wait()
	}()
	if unknownErr == nil || unknownErr.Error() != locked.Error() {
		t.Fatalf("locked account answered %q, unknown user %q", locked, unknownErr)
	}

	clk.add(9 * time.Minute)
	if login("right-pass") == nil {
		t.Fatal("the lock ended early")
	}
	clk.add(2 * time.Minute)
	if err := login("right-pass"); err != nil {
		t.Fatalf("after the lock: %v", err)
	}
}

func TestUnlockLiftsALock(t *testing.T) {
	dir := dirtest.Open(t, "sqlite")
	g := guard.New(guard.Config{AccountLimit: 1, AddressLimit: 2, BaseDelay: time.Millisecond}, dir.DB(), slog.New(slog.DiscardHandler))
	ctx := context.Background()
	g.Failed(ctx, "Pilot7", "192.0.2.9:5555")
	g.Failed(ctx, "pilot8", "192.0.2.9:5556")
	if _, err := g.Check(ctx, "pilot7", "198.51.100.1:1"); !errors.Is(err, mailcore.ErrLocked) {
		t.Fatalf("pilot7 not locked: %v", err)
	}
	if _, err := g.Check(ctx, "someone", "192.0.2.9:1"); !errors.Is(err, mailcore.ErrLocked) {
		t.Fatalf("the address is not locked: %v", err)
	}
	if n, err := guard.Unlock(ctx, dir.DB(), "192.0.2.9"); err != nil || n != 1 {
		t.Fatalf("unlock address: %d %v", n, err)
	}
	if n, err := guard.Unlock(ctx, dir.DB(), "PILOT7"); err != nil || n != 1 {
		t.Fatalf("unlock pilot7: %d %v", n, err)
	}
	if _, err := g.Check(ctx, "pilot7", "192.0.2.9:1"); err != nil {
		t.Fatalf("still locked: %v", err)
	}
}
