package oidcp

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/mailcore"
)

const csrfCookie = "egret_oidc_csrf"

var loginTemplate = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in - egret</title>
<style>body{font-family:sans-serif;max-width:22rem;margin:4rem auto;padding:0 1rem}
label,input,button{display:block;width:100%;margin:.4rem 0;box-sizing:border-box}
input,button{padding:.5rem}.err{color:#a00}.alt{margin-top:1.5rem}</style>
</head><body>
<h1>Sign in</h1>
<p>{{.Client}} asks you to sign in.</p>
{{if .Error}}<p class="err" role="alert">{{.Error}}</p>{{end}}
<form method="post" action="{{.Action}}">
<input type="hidden" name="id" value="{{.ID}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<label for="username">User name or mail address</label>
<input id="username" name="username" autocomplete="username" value="{{.Username}}" required autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
{{if .Upstream}}<p class="alt"><a href="{{.Upstream}}">Sign in with the company account</a></p>{{end}}
</body></html>
`))

type loginView struct {
	Client, Error, Action, ID, CSRF, Username, Upstream string
}

// securityHeaders keep the login page out of frames (clickjacking) and
// out of caches.
func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
}

// csrfToken binds a form to the browser's CSRF cookie and to one
// authorization request.
func (p *Provider) csrfToken(cookie, id string) string {
	m := hmac.New(sha256.New, p.csrfKey)
	m.Write([]byte(cookie + "|" + id))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// loginPage shows the form, or finishes at once for a browser already
// signed in at the provider unless the client asked for prompt=login.
func (p *Provider) loginPage(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	req, ok := p.st.request(id)
	if !ok || req.done {
		http.Error(w, "This sign-in link has expired. Go back to the application and try again.", http.StatusBadRequest)
		return
	}
	if sid, ss, ok := p.sessions.fromRequest(r); ok && !slices.Contains(req.req.Prompt, oidc.PromptLogin) {
		if _, err := p.st.users.BySubject(r.Context(), ss.subject); err == nil {
			p.finish(w, r, id, ss.subject, sid, ss.amr, ss.at)
			return
		}
	}
	p.renderLogin(w, r, req, "", "", http.StatusOK)
}

func (p *Provider) renderLogin(w http.ResponseWriter, r *http.Request, req *authRequest, username, msg string, status int) {
	cookie := ""
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) >= 16 {
		cookie = c.Value
	} else {
		cookie = randomString(24)
		http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: cookie, Path: LoginPath,
			HttpOnly: true, Secure: p.secure, SameSite: http.SameSiteStrictMode})
	}
	v := loginView{Client: req.req.ClientID, Error: msg, Action: LoginPath, ID: req.id,
		CSRF: p.csrfToken(cookie, req.id), Username: username}
	if c, err := p.st.clients.Get(r.Context(), req.req.ClientID); err == nil {
		v.Client = c.Name
	}
	if p.cfg.Upstream != nil {
		v.Upstream = UpstreamPath + "?id=" + req.id
	}
	securityHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	loginTemplate.Execute(w, v)
}

// loginSubmit checks the form's CSRF token, then the password through
// the guard: a locked-out user or address gets the wrong-password page,
// whatever the password.
func (p *Provider) loginSubmit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	id := r.PostForm.Get("id")
	c, err := r.Cookie(csrfCookie)
	if err != nil || !hmac.Equal([]byte(p.csrfToken(c.Value, id)), []byte(r.PostForm.Get("csrf"))) {
		http.Error(w, "The form has expired or did not come from this site. Reload the page and try again.", http.StatusForbidden)
		return
	}
	req, ok := p.st.request(id)
	if !ok || req.done {
		http.Error(w, "This sign-in link has expired. Go back to the application and try again.", http.StatusBadRequest)
		return
	}
	username := strings.TrimSpace(r.PostForm.Get("username"))
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	var who Identity
	err = mailcore.Guarded(ctx, p.cfg.Guard, username, r.RemoteAddr, func(ctx context.Context) error {
		var err error
		who, err = p.st.users.Password(ctx, username, r.PostForm.Get("password"))
		if errors.Is(err, ErrRefused) {
			return mailcore.ErrBadCredentials
		}
		return err
	})
	switch {
	case errors.Is(err, mailcore.ErrBadCredentials):
		p.log.Info("oidc sign-in refused", "user", username, "client", req.req.ClientID,
			"remote", r.RemoteAddr)
		p.renderLogin(w, r, req, username, "The user name or password is wrong.", http.StatusUnauthorized)
		return
	case err != nil:
		p.log.Warn("oidc sign-in not checked", "user", username, "err", err)
		p.renderLogin(w, r, req, username, "Sign-in is unavailable, try again shortly.", http.StatusServiceUnavailable)
		return
	}
	p.startSession(w, r, id, who, []string{"pwd"})
}

// startSession signs the browser in at the provider and finishes the
// authorization request.
func (p *Provider) startSession(w http.ResponseWriter, r *http.Request, id string, who Identity, amr []string) {
	sid, ss := p.sessions.start(who.Subject, amr)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: sid, Path: "/oidc/",
		HttpOnly: true, Secure: p.secure, SameSite: http.SameSiteLaxMode,
		MaxAge: int(SessionLifetime / time.Second)})
	p.log.Info("oidc signed in", "person", who.Subject, "amr", strings.Join(amr, " "))
	p.finish(w, r, id, who.Subject, sid, amr, ss.at)
}

func (p *Provider) finish(w http.ResponseWriter, r *http.Request, id, subject, sid string, amr []string, at time.Time) {
	if err := p.st.complete(id, subject, sid, amr, at); err != nil {
		http.Error(w, "This sign-in link has expired. Go back to the application and try again.", http.StatusBadRequest)
		return
	}
	http.Redirect(w, r, p.callbackURL(id), http.StatusSeeOther)
}

func (p *Provider) signedOut(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("You are signed out.\n"))
}

// upstreamState is one upstream sign-in in flight.
type upstreamState struct {
	requestID, nonce, verifier string
	created                    time.Time
}

const upstreamCookie = "egret_oidc_upstream"

// upstreamStart sends the browser to the company identity provider.
func (p *Provider) upstreamStart(w http.ResponseWriter, r *http.Request) {
	if p.cfg.Upstream == nil {
		http.NotFound(w, r)
		return
	}
	id := r.URL.Query().Get("id")
	if req, ok := p.st.request(id); !ok || req.done {
		http.Error(w, "This sign-in link has expired. Go back to the application and try again.", http.StatusBadRequest)
		return
	}
	st := upstreamState{requestID: id, nonce: randomString(16),
		verifier: randomString(32), created: time.Now()}
	state := randomString(24)
	u, err := p.cfg.Upstream.AuthURL(r.Context(), state, st.nonce, st.verifier)
	if err != nil {
		p.log.Warn("upstream sign-in unavailable", "err", err)
		http.Error(w, "The company sign-in is unavailable, use your password.", http.StatusBadGateway)
		return
	}
	p.upMu.Lock()
	for k, v := range p.upState {
		if time.Since(v.created) > RequestLifetime {
			delete(p.upState, k)
		}
	}
	p.upState[state] = st
	p.upMu.Unlock()
	// The cookie binds the state to this browser: a callback carried to
	// another browser is refused (RFC 6749 §10.12).
	http.SetCookie(w, &http.Cookie{Name: upstreamCookie, Value: state, Path: UpstreamCallbackPath,
		HttpOnly: true, Secure: p.secure, SameSite: http.SameSiteLaxMode,
		MaxAge: int(RequestLifetime / time.Second)})
	http.Redirect(w, r, u, http.StatusFound)
}

// upstreamCallback verifies the upstream ID token and maps it to a
// directory user: preferred_username as a login first, then a verified
// email as a mail address. Unknown and disabled users are refused.
func (p *Provider) upstreamCallback(w http.ResponseWriter, r *http.Request) {
	if p.cfg.Upstream == nil {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	state := q.Get("state")
	c, err := r.Cookie(upstreamCookie)
	p.upMu.Lock()
	st, ok := p.upState[state]
	delete(p.upState, state)
	p.upMu.Unlock()
	if err != nil || state == "" || c.Value != state || !ok {
		http.Error(w, "The company sign-in did not start in this browser.", http.StatusBadRequest)
		return
	}
	if e := q.Get("error"); e != "" {
		http.Error(w, "The company sign-in was not completed.", http.StatusUnauthorized)
		return
	}
	claims, err := p.cfg.Upstream.Exchange(r.Context(), q.Get("code"), st.nonce, st.verifier)
	if err != nil {
		p.log.Warn("upstream sign-in failed", "err", err)
		http.Error(w, "The company sign-in could not be verified.", http.StatusUnauthorized)
		return
	}
	who, err := p.upstreamUser(r.Context(), claims.PreferredUsername, claims.Email, claims.EmailVerified)
	if err != nil {
		p.log.Info("upstream sign-in refused", "upstream_subject", claims.Subject,
			"user", claims.PreferredUsername, "err", err)
		http.Error(w, "Your company account has no enabled egret account.", http.StatusForbidden)
		return
	}
	p.startSession(w, r, st.requestID, who, []string{"fed"})
}

func (p *Provider) upstreamUser(ctx context.Context, login, email string, verified *bool) (Identity, error) {
	store := p.cfg.Store
	if login != "" && !strings.Contains(login, "@") {
		users, _, err := store.ListUsers(ctx, directory.UserFilter{Login: login, Limit: 2})
		if err != nil {
			return Identity{}, err
		}
		if len(users) == 1 && users[0].Account != nil {
			return identity(users[0].Account, &users[0].Person)
		}
	}
	if email == "" || (verified != nil && !*verified) {
		return Identity{}, ErrRefused
	}
	return p.st.users.Find(ctx, email)
}
