package oidcp

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/mailcore"
	"github.com/egretair/egret/sso/upstream"
)

// Config configures the provider.
type Config struct {
	// Issuer is the provider's identifier and base URL (OpenID Connect
	// Discovery §3), without a path: "https://sso.example.com".
	Issuer string
	// Store is the directory; its database holds clients and keys.
	Store *directory.Store
	// KeyGrace is how long a retired signing key still verifies; zero
	// means DefaultKeyGrace.
	KeyGrace time.Duration
	// Upstream, when set, adds "sign in with the company account" to
	// the login page. Its redirect URL must be UpstreamCallbackPath
	// under Issuer.
	Upstream *upstream.Login
	// Guard, when set, slows and locks password guessing at the login
	// page, counted with every other sign-in egret offers.
	Guard mailcore.LoginGuard
	Log   *slog.Logger
}

// Paths served under the issuer.
const (
	LoginPath            = "/oidc/login"
	UpstreamPath         = "/oidc/upstream"
	UpstreamCallbackPath = "/oidc/upstream/callback"
	endSessionPath       = "/oidc/end_session"
	callbackPath         = "/oidc/authorize/callback"
)

// Provider is the OpenID Connect provider as an http.Handler for
// /.well-known/openid-configuration and everything under /oidc/.
type Provider struct {
	cfg      Config
	op       *op.Provider
	st       *storage
	sessions *sessions
	log      *slog.Logger
	csrfKey  []byte
	secure   bool
	mux      *http.ServeMux

	upMu    sync.Mutex
	upState map[string]upstreamState
}

// CheckIssuer refuses an issuer that is not an absolute URL without path,
// query or fragment, or that is plain http off loopback (OpenID Connect
// Discovery §3 requires https).
func CheckIssuer(issuer string) error {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("oidcp: issuer %q: want scheme://host[:port] without a path", issuer)
	}
	if u.Scheme == "https" {
		return nil
	}
	h := u.Hostname()
	if u.Scheme == "http" && (h == "localhost" || strings.HasPrefix(h, "127.") || h == "::1") {
		return nil
	}
	return fmt.Errorf("oidcp: issuer %q: want https (http only on loopback)", issuer)
}

// New makes the provider. It makes the first signing key when there is
// none.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	cfg.Issuer = strings.TrimSuffix(cfg.Issuer, "/")
	if err := CheckIssuer(cfg.Issuer); err != nil {
		return nil, err
	}
	if cfg.Store == nil {
		return nil, errors.New("oidcp: no directory store")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	db := cfg.Store.DB()
	keys := Keys{DB: db, Grace: cfg.KeyGrace, Read: cfg.Store.ReadPrimaryFirst}
	if _, err := keys.Active(ctx); err != nil {
		return nil, err
	}
	p := &Provider{cfg: cfg, sessions: newSessions(), log: cfg.Log.With("service", "oidc"),
		csrfKey: make([]byte, 32), secure: strings.HasPrefix(cfg.Issuer, "https:"),
		upState: map[string]upstreamState{}}
	rand.Read(p.csrfKey)
	p.st = newStorage(Clients{DB: db}, keys, Users{Store: cfg.Store}, p.sessions)
	p.st.loginURL = func(id string) string { return cfg.Issuer + LoginPath + "?id=" + url.QueryEscape(id) }

	// The key op uses for opaque tokens; egret issues JWTs only, so
	// it is never persisted.
	var opKey [32]byte
	rand.Read(opKey[:])
	opts := []op.Option{
		op.WithCustomEndpoints(op.NewEndpoint("oidc/authorize"), op.NewEndpoint("oidc/token"),
			op.NewEndpoint("oidc/userinfo"), op.NewEndpoint("oidc/revoke"),
			op.NewEndpoint(strings.TrimPrefix(endSessionPath, "/")), op.NewEndpoint("oidc/keys")),
		op.WithCustomIntrospectionEndpoint(op.NewEndpoint("oidc/introspect")),
		op.WithCustomDeviceAuthorizationEndpoint(op.NewEndpoint("oidc/device")),
		op.WithLogger(p.log),
	}
	if !p.secure {
		opts = append(opts, op.WithAllowInsecure())
	}
	prov, err := op.NewProvider(&op.Config{
		CryptoKey:                opKey,
		DefaultLogoutRedirectURI: LoginPath + "/signed-out",
		CodeMethodS256:           true,
		AuthMethodPost:           true,
		SupportedUILocales:       []language.Tag{language.English},
		SupportedScopes: []string{oidc.ScopeOpenID, oidc.ScopeProfile,
			oidc.ScopeEmail, ScopeMail},
		SupportedClaims: []string{"sub", "aud", "exp", "iat", "iss", "auth_time",
			"nonce", "azp", "name", "preferred_username", "email", "email_verified"},
	}, p.st, op.StaticIssuer(cfg.Issuer), opts...)
	if err != nil {
		return nil, fmt.Errorf("oidcp: %w", err)
	}
	p.op = prov

	mux := http.NewServeMux()
	mux.Handle("/.well-known/openid-configuration", prov)
	mux.HandleFunc("GET "+LoginPath, p.loginPage)
	mux.HandleFunc("POST "+LoginPath, p.loginSubmit)
	mux.HandleFunc("GET "+LoginPath+"/signed-out", p.signedOut)
	mux.HandleFunc("GET "+UpstreamPath, p.upstreamStart)
	mux.HandleFunc("GET "+UpstreamCallbackPath, p.upstreamCallback)
	mux.HandleFunc(endSessionPath, p.endSession)
	mux.Handle("/oidc/", prov)
	p.mux = mux
	return p, nil
}

// ServeHTTP serves discovery, the protocol endpoints and the login page.
func (p *Provider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mux.ServeHTTP(w, r)
}

// Clients answers the client table.
func (p *Provider) Clients() Clients { return p.st.clients }

// Keys answers the key table.
func (p *Provider) Keys() Keys { return p.st.keys }

// endSession ends the browser's session at the provider, whatever the
// id_token_hint says, then lets op validate the request and redirect
// (OpenID Connect RP-Initiated Logout §2, §3).
func (p *Provider) endSession(w http.ResponseWriter, r *http.Request) {
	if id, ss, ok := p.sessions.fromRequest(r); ok {
		p.sessions.end(id)
		p.log.Info("oidc session ended", "person", ss.subject)
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/oidc/",
		MaxAge: -1, HttpOnly: true, Secure: p.secure, SameSite: http.SameSiteLaxMode})
	p.op.ServeHTTP(w, r)
}

// callbackURL is where a finished sign-in goes back to op, which then
// redirects to the client with the code.
func (p *Provider) callbackURL(id string) string {
	return p.cfg.Issuer + callbackPath + "?id=" + url.QueryEscape(id)
}
