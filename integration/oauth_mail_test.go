package integration

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/egretair/egret/directory/dirtest"
)

// TestMailClientsSignInWithAnEgretToken gets an access token from the
// node's OpenID Connect provider with the code flow and PKCE, as an
// OAuth-capable mail client or webmail would, then signs in with it
// through Python's imaplib (OAUTHBEARER) and smtplib (XOAUTH2).
func TestMailClientsSignInWithAnEgretToken(t *testing.T) {
	n := startNode(t, dirtest.URL(t, "sqlite"))
	makeUser(t, n, "pilot", "pilot-secret-1")
	const redirect = "http://127.0.0.1:9/webmail/callback"
	if _, err := n.egret("", "oidc", "client", "add", "--id", "webmail", "--public",
		"--redirect-uri", redirect); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	issuer := "http://" + n.httpAddr
	p, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		t.Fatalf("discovery at %s: %v", issuer, err)
	}
	oc := &oauth2.Config{ClientID: "webmail", RedirectURL: redirect, Endpoint: p.Endpoint(),
		Scopes: []string{oidc.ScopeOpenID, "profile", "email", "mail"}}
	verifier := oauth2.GenerateVerifier()

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if strings.HasPrefix(req.URL.String(), redirect) {
				return http.ErrUseLastResponse
			}
			return nil
		}}
	resp, err := browser.Get(oc.AuthCodeURL("st-1", oauth2.S256ChallengeOption(verifier)))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	field := func(name string) string {
		m := regexp.MustCompile(`name="` + name + `" value="([^"]+)"`).FindSubmatch(page)
		if m == nil {
			t.Fatalf("login page (%s) has no %s field:\n%s", resp.Status, name, page)
		}
		return html.UnescapeString(string(m[1]))
	}
	resp, err = browser.PostForm(resp.Request.URL.String(), url.Values{"id": {field("id")},
		"csrf": {field("csrf")}, "username": {"pilot"}, "password": {"pilot-secret-1"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("sign-in: %s, redirect %v", resp.Status, loc)
	}
	tok, err := oc.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}

	py := exec.CommandContext(ctx, "python3", filepath.Join(repoRoot, "integration/clients/oauth_mail.py"),
		n.imapAddr, n.submitAddr, "pilot", tok.AccessToken)
	if out, err := py.CombinedOutput(); err != nil {
		t.Fatalf("oauth_mail.py: %v\n%s", err, out)
	}
}
