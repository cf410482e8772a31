package oidcp_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/sso/guard"
	"github.com/egretair/egret/sso/oidcp"
)

// errLine is the login page's error message.
var errLine = regexp.MustCompile(`<p class="err"[^>]*>[^<]*</p>`)

// testClock is a time the test moves by hand.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestLoginPageIsGuardedAgainstGuessing(t *testing.T) {
	for _, tc := range []struct {
		name string
		// limits of the guard
		perAccount, perAddress int
		// guesses is the user names of the failed attempts, one each.
		guesses []string
		subject string
	}{
		{name: "three wrong passwords lock the account", perAccount: 3, perAddress: 100,
			guesses: []string{"lina", "LiNa", "lina"}, subject: "user:lina"},
		{name: "four failures from one address lock the address", perAccount: 100, perAddress: 4,
			guesses: []string{"pilot1", "pilot2", "lina", "nobody"}, subject: "ip:127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &testClock{now: time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)}
			var g *guard.Guard
			f := newFixture(t, oidcp.Config{}, func(s *directory.Store, cfg *oidcp.Config) {
				g = guard.New(guard.Config{AccountLimit: tc.perAccount, AddressLimit: tc.perAddress,
					LockFor: 10 * time.Minute, BaseDelay: 100 * time.Millisecond,
					MaxDelay: 400 * time.Millisecond, Now: clk.Now}, s.DB(), slog.New(slog.DiscardHandler))
				cfg.Guard = g
			})
			ctx := context.Background()
			const redirect = "http://127.0.0.1:9/crew"
			if _, _, err := f.prov.Clients().Add(ctx, oidcp.NewClient{ID: "crew-app", Public: true,
				RedirectURIs: []string{redirect}}); err != nil {
				t.Fatal(err)
			}
			r := newRP(t, f.issuer, "crew-app", "", redirect)

			// try signs in once and answers the status, the page and
			// how long the answer took.
			try := func(user, pass string) (*http.Response, string, time.Duration) {
				t.Helper()
				v := oauth2.GenerateVerifier()
				u := r.oauth.AuthCodeURL("st", oauth2.S256ChallengeOption(v))
				start := time.Now()
				resp := signIn(t, browser(t, redirect), u, user, pass)
				took := time.Since(start)
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				return resp, string(body), took
			}

			var took []time.Duration
			var wrongPage string
			for i, user := range tc.guesses {
				resp, body, d := try(user, "not the password")
				if resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("guess %d: %s", i+1, resp.Status)
				}
				took = append(took, d)
				wrongPage = body
			}
			// The delay doubles with each failure: none before the
			// first, 100ms before the second, 200ms before the third.
			if took[1] < 100*time.Millisecond || took[2] < 200*time.Millisecond {
				t.Errorf("failures answered after %v: want growing delays", took)
			}

			// Locked: the right password is answered as a wrong one.
			resp, body, _ := try("lina", password)
			if loc, _ := resp.Location(); loc != nil {
				t.Fatalf("the right password while locked went to %s", loc)
			}
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "wrong") {
				t.Fatalf("the right password while locked: %s\n%s", resp.Status, body)
			}
			if alert := errLine.FindString(body); alert == "" || alert != errLine.FindString(wrongPage) {
				t.Fatalf("a locked sign-in reads %q, a wrong password %q", alert, errLine.FindString(wrongPage))
			}
			locks, err := guard.Lockouts(ctx, f.store.DB(), clk.Now())
			if err != nil || len(locks) != 1 || locks[0].Subject != tc.subject {
				t.Fatalf("lockouts %+v, %v; want one of %s", locks, err, tc.subject)
			}

			// Still locked a minute before the end, free after it.
			clk.add(9 * time.Minute)
			if resp, _, _ := try("lina", password); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("the lock ended early: %s", resp.Status)
			}
			clk.add(2 * time.Minute)
			v := oauth2.GenerateVerifier()
			u := r.oauth.AuthCodeURL("after", oauth2.S256ChallengeOption(v))
			code := codeFrom(t, signIn(t, browser(t, redirect), u, "lina", password), redirect, "after")
			tok, err := r.oauth.Exchange(ctx, code, oauth2.VerifierOption(v))
			if err != nil {
				t.Fatalf("exchange after the lock: %v", err)
			}
			if _, err := r.verifier.Verify(ctx, tok.Extra("id_token").(string)); err != nil {
				t.Fatal(err)
			}
		})
	}
}
