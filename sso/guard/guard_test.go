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
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/egretair/egret/directory/dirtest"
	"github.com/egretair/egret/mailcore"
	"github.com/egretair/egret/mailcore/imapd"
	"github.com/egretair/egret/mailcore/store"
	"github.com/egretair/egret/mailcore/submission"
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

// goodToken is the one access token oneUser takes, for crew1.
const goodToken = "token-of-crew1"

// tokenUser is oneUser that also takes goodToken, as egret's accounts
// take the provider's access tokens.
type tokenUser struct{ oneUser }

func (tokenUser) AuthenticateToken(_ context.Context, user, token string) (mailcore.Account, error) {
	if token == goodToken && (user == "" || user == "crew1") {
		return mailcore.Account{ID: "acct-crew1", Login: "crew1"}, nil
	}
	return mailcore.Account{}, mailcore.ErrBadCredentials
}

func TestBadTokensLockAsWrongPasswordsDo(t *testing.T) {
	for _, door := range []string{"IMAP", "submission"} {
		t.Run(door, func(t *testing.T) {
			dir := dirtest.Open(t, "sqlite")
			clk := &clock{now: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)}
			quiet := slog.New(slog.DiscardHandler)
			g := guard.New(guard.Config{AccountLimit: 3, AddressLimit: 100, LockFor: 10 * time.Minute,
				BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond, Now: clk.Now}, dir.DB(), quiet)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var signIn func(user, token string) error
			if door == "IMAP" {
				st, err := store.Open(t.TempDir(), quiet)
				if err != nil {
					t.Fatal(err)
				}
				defer st.Close()
				srv := imapd.New(imapd.Config{Guard: g}, tokenUser{}, st, quiet)
				go srv.Serve(ln)
				defer srv.Close()
				signIn = func(user, token string) error {
					c, err := imapclient.DialInsecure(ln.Addr().String(), nil)
					if err != nil {
						t.Fatal(err)
					}
					defer c.Close()
					return c.Authenticate(sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{
						Username: user, Token: token}))
				}
			} else {
				srv := submission.New(submission.Config{Guard: g}, tokenUser{}, nil, quiet)
				go srv.Serve(ln)
				defer srv.Shutdown(context.Background())
				signIn = func(user, token string) error {
					c, err := smtp.Dial(ln.Addr().String())
					if err != nil {
						t.Fatal(err)
					}
					defer c.Close()
					return c.Auth(sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{
						Username: user, Token: token}))
				}
			}

			// Tokens that name no user count by address only: they
			// lock no account, and no shared nameless subject.
			for range 3 {
				if signIn("", "forged") == nil {
					t.Fatal("a forged token was taken")
				}
			}
			if locks, _ := guard.Lockouts(context.Background(), dir.DB(), clk.Now()); len(locks) != 0 {
				t.Fatalf("nameless failures locked %+v", locks)
			}
			if err := signIn("", goodToken); err != nil {
				t.Fatalf("the good token without a user: %v", err)
			}

			for i := range 3 {
				if signIn("crew1", "forged") == nil {
					t.Fatalf("forged token %d taken", i+1)
				}
			}
			if signIn("crew1", goodToken) == nil {
				t.Fatal("the good token worked while crew1 was locked")
			}
			ctx := context.Background()
			if _, err := mailcore.Authenticate(ctx, g, oneUser{}, "crew1", "right-pass", "192.0.2.1:1"); !errors.Is(err, mailcore.ErrBadCredentials) {
				t.Fatalf("the password after bad tokens: %v", err)
			}
			locks, err := guard.Lockouts(ctx, dir.DB(), clk.Now())
			if err != nil || len(locks) != 1 || locks[0].Subject != "user:crew1" {
				t.Fatalf("lockouts: %+v %v", locks, err)
			}

			clk.add(11 * time.Minute)
			if err := signIn("crew1", goodToken); err != nil {
				t.Fatalf("after the lock: %v", err)
			}
		})
	}
}
