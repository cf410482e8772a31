package oidcp_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/directory/dirtest"
	"github.com/egretair/egret/sso/oauthbearer"
	"github.com/egretair/egret/sso/oidcp"
)

const password = "Tailwind 0f Kunming"

// fixture is a provider on loopback over a directory with one person.
type fixture struct {
	store   *directory.Store
	prov    *oidcp.Provider
	issuer  string
	person  directory.Person
	address string
}

// newFixture starts a provider; each setup may change its
// configuration once the directory exists.
func newFixture(t *testing.T, cfg oidcp.Config, setup ...func(*directory.Store, *oidcp.Config)) *fixture {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return newFixtureOn(t, ln, cfg, setup...)
}

// addPerson adds an active person with an enabled account and the test
// password.
func addPerson(t *testing.T, s *directory.Store, login string) (directory.Person, string) {
	t.Helper()
	p := directory.Person{ID: directory.NewID(), Kind: directory.PersonStaff,
		Login: login, LoginLower: strings.ToLower(login), DisplayName: login, Status: directory.PersonActive}
	a := directory.Account{ID: directory.NewID(), PersonID: &p.ID,
		Address: strings.ToLower(login) + "@egretair.example", Status: directory.AccountEnabled}
	for _, rec := range []any{&p, &a} {
		if err := s.DB().Create(rec).Error; err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.SetPassword(context.Background(), login, password); err != nil {
		t.Fatal(err)
	}
	return p, a.Address
}

func newFixtureOn(t *testing.T, ln net.Listener, cfg oidcp.Config, setup ...func(*directory.Store, *oidcp.Config)) *fixture {
	t.Helper()
	s := dirtest.Open(t, "sqlite")
	ctx := context.Background()
	p := directory.Person{ID: directory.NewID(), Kind: directory.PersonStaff,
		Login: "LiNa", LoginLower: "lina", DisplayName: "李娜", Status: directory.PersonActive}
	a := directory.Account{ID: directory.NewID(), PersonID: &p.ID,
		Address: "lina@egretair.example", Status: directory.AccountEnabled}
	for _, rec := range []any{&p, &a} {
		if err := s.DB().Create(rec).Error; err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.SetPassword(ctx, "lina", password); err != nil {
		t.Fatal(err)
	}

	issuer := "http://" + ln.Addr().String()
	cfg.Issuer, cfg.Store = issuer, s
	for _, f := range setup {
		f(s, &cfg)
	}
	prov, err := oidcp.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(prov)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return &fixture{store: s, prov: prov, issuer: issuer, person: p, address: a.Address}
}

// rp is a relying party as an application builds it with go-oidc.
type rp struct {
	provider *oidc.Provider
	oauth    *oauth2.Config
	verifier *oidc.IDTokenVerifier
}

func newRP(t *testing.T, issuer, clientID, secret, redirect string, scopes ...string) *rp {
	t.Helper()
	p, err := oidc.NewProvider(context.Background(), issuer)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	return &rp{provider: p,
		oauth: &oauth2.Config{ClientID: clientID, ClientSecret: secret, RedirectURL: redirect,
			Endpoint: p.Endpoint(), Scopes: append([]string{oidc.ScopeOpenID, "profile", "email"}, scopes...)},
		verifier: p.Verifier(&oidc.Config{ClientID: clientID})}
}

// browser is a cookie-keeping client that stops at the relying party's
// redirect URI instead of following it.
func browser(t *testing.T, stopAt string) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if strings.HasPrefix(req.URL.String(), stopAt) {
				return http.ErrUseLastResponse
			}
			return nil
		}}
}

var (
	idField   = regexp.MustCompile(`name="id" value="([^"]+)"`)
	csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
)

// signIn opens authURL, fills in the login form and answers the final
// response: the redirect to the relying party, or the form again.
func signIn(t *testing.T, c *http.Client, authURL, user, pass string) *http.Response {
	t.Helper()
	resp, err := c.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login page: %s: %s", resp.Status, body)
	}
	id, csrf := idField.FindSubmatch(body), csrfField.FindSubmatch(body)
	if id == nil || csrf == nil {
		t.Fatalf("login page has no form: %s", body)
	}
	form := url.Values{"id": {html.UnescapeString(string(id[1]))},
		"csrf": {html.UnescapeString(string(csrf[1]))}, "username": {user}, "password": {pass}}
	resp, err = c.PostForm(resp.Request.URL.String(), form)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// codeFrom reads the code off a redirect to the relying party.
func codeFrom(t *testing.T, resp *http.Response, redirect, state string) string {
	t.Helper()
	loc, err := resp.Location()
	if err != nil || !strings.HasPrefix(loc.String(), redirect) {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("want a redirect to %s, got %s (%v): %s", redirect, resp.Status, loc, b)
	}
	if got := loc.Query().Get("state"); got != state {
		t.Fatalf("state %q came back as %q", state, got)
	}
	code := loc.Query().Get("code")
	if code == "" {
		t.Fatalf("redirect without a code: %s", loc)
	}
	return code
}

func random(t *testing.T) string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestCodeFlowWithPKCEForAGoOIDCRelyingParty(t *testing.T) {
	f := newFixture(t, oidcp.Config{})
	ctx := context.Background()
	const redirect = "http://127.0.0.1:9/callback"
	if _, _, err := f.prov.Clients().Add(ctx, oidcp.NewClient{ID: "crew-portal", Name: "Crew portal",
		Public: true, RedirectURIs: []string{redirect}}); err != nil {
		t.Fatal(err)
	}
	r := newRP(t, f.issuer, "crew-portal", "", redirect, "mail")

	flow := func(t *testing.T) (code, verifier, nonce string) {
		verifier, nonce, state := oauth2.GenerateVerifier(), random(t), random(t)
		u := r.oauth.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier))
		return codeFrom(t, signIn(t, browser(t, redirect), u, "lina", password), redirect, state), verifier, nonce
	}

	code, verifier, nonce := flow(t)
	tok, err := r.oauth.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	rawID, _ := tok.Extra("id_token").(string)
	idt, err := r.verifier.Verify(ctx, rawID)
	if err != nil {
		t.Fatalf("the ID token does not verify: %v", err)
	}
	var claims struct {
		Sub, Email, Name  string
		PreferredUsername string `json:"preferred_username"`
	}
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	if idt.Nonce != nonce || claims.Sub != f.person.ID || claims.PreferredUsername != "LiNa" ||
		claims.Email != f.address || claims.Name != "李娜" {
		t.Fatalf("ID token says %+v nonce %q; want person %s, LiNa, %s, 李娜, nonce %q",
			claims, idt.Nonce, f.person.ID, f.address, nonce)
	}
	ui, err := r.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil || ui.Subject != f.person.ID || ui.Email != f.address {
		t.Fatalf("userinfo: %+v, %v", ui, err)
	}

	t.Run("the access token signs in to mail, the ID token does not", func(t *testing.T) {
		v := &oauthbearer.Verifier{Issuer: f.issuer, Keys: f.prov.Keys(), Users: oidcp.Users{Store: f.store}}
		if who, err := v.Verify(ctx, "lina@egretair.example", tok.AccessToken); err != nil || who.Subject != f.person.ID {
			t.Fatalf("access token for mail: %+v, %v", who, err)
		}
		if _, err := v.Verify(ctx, "", rawID); err == nil {
			t.Fatal("an ID token was accepted as a mail token")
		}
		if _, err := v.Verify(ctx, "someoneelse", tok.AccessToken); err == nil {
			t.Fatal("a token was accepted for another user than its subject")
		}
	})

	t.Run("a reused code is refused", func(t *testing.T) {
		if _, err := r.oauth.Exchange(ctx, code, oauth2.VerifierOption(verifier)); err == nil {
			t.Fatal("the same code was exchanged twice")
		}
	})

	t.Run("a wrong PKCE verifier is refused", func(t *testing.T) {
		code, _, _ := flow(t)
		if _, err := r.oauth.Exchange(ctx, code, oauth2.VerifierOption(oauth2.GenerateVerifier())); err == nil {
			t.Fatal("a code was exchanged with the wrong verifier")
		}
		if _, err := r.oauth.Exchange(ctx, code); err == nil {
			t.Fatal("a code was exchanged without its verifier")
		}
	})

	t.Run("a tampered ID token is refused", func(t *testing.T) {
		parts := strings.Split(rawID, ".")
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		forged := strings.Replace(string(payload), f.person.ID, directory.NewID(), 1)
		parts[1] = base64.RawURLEncoding.EncodeToString([]byte(forged))
		if _, err := r.verifier.Verify(ctx, strings.Join(parts, ".")); err == nil {
			t.Fatal("a tampered ID token verified")
		}
		v := &oauthbearer.Verifier{Issuer: f.issuer, Keys: f.prov.Keys(), Users: oidcp.Users{Store: f.store}}
		at := strings.Split(tok.AccessToken, ".")
		at[2] = parts[2]
		if _, err := v.Verify(ctx, "", strings.Join(at, ".")); err == nil {
			t.Fatal("an access token with another token's signature verified")
		}
	})

	t.Run("a public client without PKCE is refused", func(t *testing.T) {
		c := browser(t, redirect)
		resp, err := c.Get(r.oauth.AuthCodeURL("s1"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := resp.Location()
		if loc == nil || loc.Query().Get("error") != "invalid_request" || loc.Query().Get("code") != "" {
			t.Fatalf("authorize without code_challenge: %s, %v", resp.Status, loc)
		}
	})

	t.Run("plain PKCE is refused", func(t *testing.T) {
		c := browser(t, redirect)
		u := r.oauth.AuthCodeURL("s2", oauth2.SetAuthURLParam("code_challenge", oauth2.GenerateVerifier()),
			oauth2.SetAuthURLParam("code_challenge_method", "plain"))
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := resp.Location()
		if loc == nil || loc.Query().Get("error") == "" {
			t.Fatalf("authorize with plain PKCE: %s, %v", resp.Status, loc)
		}
	})

	t.Run("an unknown client and an unregistered redirect URI get no redirect", func(t *testing.T) {
		for _, tc := range []struct{ name, client, redirect string }{
			{"unknown client", "nobody", redirect},
			{"foreign redirect", "crew-portal", "http://127.0.0.1:9/elsewhere"},
		} {
			c := browser(t, "http://127.0.0.1:9/")
			u := f.issuer + "/oidc/authorize?" + url.Values{"client_id": {tc.client}, "redirect_uri": {tc.redirect},
				"response_type": {"code"}, "scope": {"openid"}, "state": {"x"},
				"code_challenge": {s256("v")}, "code_challenge_method": {"S256"}}.Encode()
			resp, err := c.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if loc, _ := resp.Location(); loc != nil && strings.HasPrefix(loc.String(), "http://127.0.0.1:9/") {
				t.Errorf("%s: redirected to %s", tc.name, loc)
			}
			if resp.StatusCode < 400 {
				t.Errorf("%s: %s, want an error page", tc.name, resp.Status)
			}
		}
	})

	t.Run("a wrong password shows the form again and no code", func(t *testing.T) {
		u := r.oauth.AuthCodeURL("s3", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
		resp := signIn(t, browser(t, redirect), u, "lina", "not the password")
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "wrong") {
			t.Fatalf("wrong password: %s", resp.Status)
		}
	})

	t.Run("a login form posted without its CSRF cookie is refused", func(t *testing.T) {
		c := browser(t, redirect)
		u := r.oauth.AuthCodeURL("s4", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		id, csrf := idField.FindSubmatch(body), csrfField.FindSubmatch(body)
		other := browser(t, redirect)
		resp, err = other.PostForm(f.issuer+oidcp.LoginPath, url.Values{"id": {string(id[1])},
			"csrf": {string(csrf[1])}, "username": {"lina"}, "password": {password}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("cross-site login post: %s, want 403", resp.Status)
		}
	})
}

func s256(v string) string {
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func TestConfidentialClientNeedsItsSecret(t *testing.T) {
	f := newFixture(t, oidcp.Config{})
	ctx := context.Background()
	const redirect = "http://127.0.0.1:9/app"
	_, secret, err := f.prov.Clients().Add(ctx, oidcp.NewClient{ID: "hr-app", RedirectURIs: []string{redirect}})
	if err != nil || secret == "" {
		t.Fatalf("add: %q, %v", secret, err)
	}
	wrong := newRP(t, f.issuer, "hr-app", "not-the-secret", redirect)
	u := wrong.oauth.AuthCodeURL("st")
	code := codeFrom(t, signIn(t, browser(t, redirect), u, "lina", password), redirect, "st")
	if _, err := wrong.oauth.Exchange(ctx, code); err == nil {
		t.Fatal("a code was exchanged with a wrong client secret")
	}
	right := newRP(t, f.issuer, "hr-app", secret, redirect)
	code = codeFrom(t, signIn(t, browser(t, redirect), u, "lina", password), redirect, "st")
	tok, err := right.oauth.Exchange(ctx, code)
	if err != nil {
		t.Fatalf("exchange with the right secret: %v", err)
	}
	if _, err := right.verifier.Verify(ctx, tok.Extra("id_token").(string)); err != nil {
		t.Fatal(err)
	}
}

func TestRotatedKeyVerifiesDuringGrace(t *testing.T) {
	f := newFixture(t, oidcp.Config{})
	ctx := context.Background()
	const redirect = "http://127.0.0.1:9/cb"
	f.prov.Clients().Add(ctx, oidcp.NewClient{ID: "ops", Public: true, RedirectURIs: []string{redirect}})
	r := newRP(t, f.issuer, "ops", "", redirect, "mail")
	v := oauth2.GenerateVerifier()
	code := codeFrom(t, signIn(t, browser(t, redirect),
		r.oauth.AuthCodeURL("st", oauth2.S256ChallengeOption(v)), "lina", password), redirect, "st")
	tok, err := r.oauth.Exchange(ctx, code, oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	old, _ := f.prov.Keys().Active(ctx)
	fresh, err := f.prov.Keys().Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// The JWKS lists both keys.
	resp, err := http.Get(f.issuer + "/oidc/keys")
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(jwks), old.ID) || !strings.Contains(string(jwks), fresh.ID) {
		t.Fatalf("JWKS after rotation lacks a key (old %s, new %s): %s", old.ID, fresh.ID, jwks)
	}
	// A token signed with the old key still verifies, for the relying
	// party and for the mail servers.
	if _, err := newRP(t, f.issuer, "ops", "", redirect).verifier.Verify(ctx, tok.Extra("id_token").(string)); err != nil {
		t.Fatalf("ID token of the retired key: %v", err)
	}
	mail := &oauthbearer.Verifier{Issuer: f.issuer, Keys: f.prov.Keys(), Users: oidcp.Users{Store: f.store}}
	if _, err := mail.Verify(ctx, "lina", tok.AccessToken); err != nil {
		t.Fatalf("access token of the retired key: %v", err)
	}
	// Past the grace period the old key is gone.
	mail.Keys.Grace = time.Nanosecond
	if _, err := mail.Verify(ctx, "lina", tok.AccessToken); err == nil {
		t.Fatal("a token of a key retired past its grace verified")
	}
}
