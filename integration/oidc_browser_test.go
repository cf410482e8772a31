package integration

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/egretair/egret/directory/dirtest"
)

// relyingParty is a company application as one is built on go-oidc
// and x/oauth2: /start sends the browser to egret with a state, a
// nonce and a PKCE challenge (RFC 7636 §4.3); /callback exchanges the
// code, verifies the ID token and greets the person by name.
type relyingParty struct {
	url      string
	oauth    *oauth2.Config
	verifier *oidc.IDTokenVerifier

	mu sync.Mutex
	// flows is what /start left for /callback, by state.
	flows map[string]rpFlow
	// refused holds why /callback refused, for the test's report.
	refused []string
}

type rpFlow struct{ verifier, nonce string }

const rpStateCookie = "rp_state"

var rpPage = template.Must(template.New("rp").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>Crew portal</title></head><body><main>
{{if .Error}}<h1 id="error">{{.Error}}</h1>{{else}}<h1 id="who">Welcome, {{.Name}}</h1>
<p id="login">{{.Login}}</p><p id="email">{{.Email}}</p>{{end}}
</main></body></html>
`))

type rpView struct{ Name, Login, Email, Error string }

// startRelyingParty serves a relying party on a loopback port of its
// own; configure finishes it once the client is registered.
func startRelyingParty(t *testing.T) *relyingParty {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rp := &relyingParty{url: "http://" + ln.Addr().String(), flows: map[string]rpFlow{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /start", rp.start)
	mux.HandleFunc("GET /callback", rp.callback)
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return rp
}

func (rp *relyingParty) configure(ctx context.Context, issuer, clientID string) error {
	p, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		return err
	}
	rp.oauth = &oauth2.Config{ClientID: clientID, RedirectURL: rp.url + "/callback",
		Endpoint: p.Endpoint(), Scopes: []string{oidc.ScopeOpenID, "profile", "email"}}
	rp.verifier = p.Verifier(&oidc.Config{ClientID: clientID})
	return nil
}

func (rp *relyingParty) start(w http.ResponseWriter, r *http.Request) {
	f := rpFlow{verifier: oauth2.GenerateVerifier(), nonce: oauth2.GenerateVerifier()}
	state := oauth2.GenerateVerifier()
	rp.mu.Lock()
	rp.flows[state] = f
	rp.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: rpStateCookie, Value: state, Path: "/",
		HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, rp.oauth.AuthCodeURL(state, oidc.Nonce(f.nonce),
		oauth2.S256ChallengeOption(f.verifier)), http.StatusFound)
}

func (rp *relyingParty) callback(w http.ResponseWriter, r *http.Request) {
	refuse := func(why string) {
		rp.mu.Lock()
		rp.refused = append(rp.refused, why)
		rp.mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
		rpPage.Execute(w, rpView{Error: why})
	}
	q := r.URL.Query()
	c, err := r.Cookie(rpStateCookie)
	rp.mu.Lock()
	f, ok := rp.flows[q.Get("state")]
	delete(rp.flows, q.Get("state"))
	rp.mu.Unlock()
	switch {
	case q.Get("error") != "":
		refuse("egret answered " + q.Get("error"))
		return
	case err != nil || c.Value != q.Get("state") || !ok:
		refuse("the state does not match this browser's")
		return
	}
	tok, err := rp.oauth.Exchange(r.Context(), q.Get("code"), oauth2.VerifierOption(f.verifier))
	if err != nil {
		refuse("code exchange: " + err.Error())
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := rp.verifier.Verify(r.Context(), raw)
	if err != nil {
		refuse("ID token: " + err.Error())
		return
	}
	if idt.Nonce != f.nonce {
		refuse("the ID token's nonce is not this sign-in's")
		return
	}
	var claims struct {
		Name              string `json:"name"`
		Email             string `json:"email"`
		PreferredUsername string `json:"preferred_username"`
	}
	if err := idt.Claims(&claims); err != nil {
		refuse("claims: " + err.Error())
		return
	}
	rpPage.Execute(w, rpView{Name: claims.Name, Login: claims.PreferredUsername, Email: claims.Email})
}

func TestBrowserSignsInToAGoOIDCRelyingPartyWithPKCE(t *testing.T) {
	n := startNode(t, dirtest.URL(t, "sqlite"))
	issuer := "http://" + n.httpAddr

	// A person whose display name is not ASCII, as most are here.
	body, _ := json.Marshal(map[string]string{"login": "zhaolei", "display_name": "赵磊"})
	if status, resp, err := n.api(http.MethodPost, "/api/v1/users", body); err != nil || status != http.StatusCreated {
		t.Fatalf("POST /api/v1/users: %d %v %s", status, err, resp)
	}
	if _, err := n.egret("oidc-secret-7\n", "user", "passwd", "zhaolei", "--password-stdin"); err != nil {
		t.Fatal(err)
	}

	rp := startRelyingParty(t)
	if _, err := n.egret("", "oidc", "client", "add", "--id", "crew-portal", "--name", "Crew portal",
		"--public", "--redirect-uri", rp.url+"/callback"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := rp.configure(ctx, issuer, "crew-portal"); err != nil {
		t.Fatalf("discovery at %s: %v", issuer, err)
	}

	b := browser(t)
	step := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		c, cancel := within(b)
		defer cancel()
		if err := chromedp.Do(c, steps...); err != nil {
			t.Fatal(err)
		}
	}
	location := func() string {
		t.Helper()
		c, cancel := within(b)
		defer cancel()
		loc, err := chromedp.Run(c, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		return loc
	}

	// The application sends the browser to egret's login page.
	step(chromedp.Navigate(rp.url+"/start"), chromedp.WaitVisible(chromedp.ID("username")))
	if loc := location(); !strings.HasPrefix(loc, issuer+"/oidc/login?id=") {
		t.Fatalf("the relying party led to %s, want egret's login page", loc)
	}
	if text := pageText(t, b); !strings.Contains(text, "Crew portal asks you to sign in") {
		t.Fatalf("login page: %s", text)
	}

	// A wrong password: the form again, with the words, and no code.
	step(chromedp.SendKeys(chromedp.ID("username"), "zhaolei"),
		chromedp.SendKeys(chromedp.ID("password"), "not-it"),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`p[role="alert"]`)))
	if loc := location(); !strings.HasPrefix(loc, issuer+"/oidc/login") {
		t.Fatalf("a wrong password led to %s", loc)
	}
	if text := pageText(t, b); !strings.Contains(text, "user name or password is wrong") {
		t.Fatalf("after a wrong password: %s", text)
	}

	// The right one (the form kept the name): back at the
	// application, which has checked the ID token and names the person.
	c, cancelVal := within(b)
	kept, err := chromedp.Run(c, chromedp.Value(chromedp.ID("username")))
	cancelVal()
	if err != nil || kept != "zhaolei" {
		t.Fatalf("the form kept the user name as %q (%v)", kept, err)
	}
	step(chromedp.SendKeys(chromedp.ID("password"), "oidc-secret-7"),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("main h1")))
	loc, text := location(), pageText(t, b)
	if !strings.HasPrefix(loc, rp.url+"/callback?") || !strings.Contains(text, "Welcome, 赵磊") ||
		!strings.Contains(text, "zhaolei@"+mailDomain) {
		rp.mu.Lock()
		t.Fatalf("after sign-in the browser is at %s:\n%s\n(relying party refused: %v)", loc, text, rp.refused)
	}

	// A forged authorization request whose redirect URI is another
	// site's: the browser, although signed in at egret, stays on
	// egret's error page and never reaches that site with a code.
	attacker, hits := tracker(t)
	forged := issuer + "/oidc/authorize?" + url.Values{
		"client_id": {"crew-portal"}, "redirect_uri": {attacker + "/steal"},
		"response_type": {"code"}, "scope": {"openid profile"}, "state": {"s"},
		"code_challenge": {pkceS256("forged-verifier")}, "code_challenge_method": {"S256"},
	}.Encode()
	c, cancelNav := within(b)
	resp, err := chromedp.Run(c, chromedp.NavigateResponse(forged))
	cancelNav()
	if err != nil {
		t.Fatal(err)
	}
	step(chromedp.Sleep(500 * time.Millisecond))
	loc, text = location(), pageText(t, b)
	if !strings.HasPrefix(loc, issuer+"/") || resp.Status < 400 || hits.Load() != 0 {
		t.Fatalf("forged redirect URI: status %d, browser at %s, attacker saw %d requests:\n%s",
			resp.Status, loc, hits.Load(), text)
	}
	if !strings.Contains(strings.ToLower(text), "redirect") {
		t.Errorf("the error page does not say what is wrong: %s", text)
	}
}

// pkceS256 is the S256 code challenge of verifier (RFC 7636 §4.2).
func pkceS256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
