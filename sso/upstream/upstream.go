// Package upstream signs users in through the company's identity
// provider ("sign in with the company account"): egret is then itself an
// OpenID Connect relying party, with go-oidc and x/oauth2, using the
// authorization code flow with PKCE (RFC 7636) and a nonce (OpenID
// Connect Core §3.1.2.1).
//
// # Security contract
//
// Exchange answers claims only from an ID token whose signature, issuer,
// audience (this client id), expiry and nonce verify against the
// provider's published keys. The caller keeps state, nonce and verifier
// per browser and compares state itself; this package compares nothing
// it was not given. Mapping the claims to a directory user, and refusing
// unknown or disabled users, is the caller's part.
//
// The provider's discovery document is fetched on first use, not at
// start, so a provider that is down delays upstream sign-in only; a
// failed fetch is tried again at the next sign-in.
package upstream

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Config names the upstream provider and egret's registration there.
type Config struct {
	Issuer       string
	ClientID     string
	ClientSecret string
	// RedirectURL is egret's callback, registered at the provider.
	RedirectURL string
	// HTTPClient, when set, is used to reach the provider.
	HTTPClient *http.Client
}

// Claims is what egret reads from the upstream ID token.
type Claims struct {
	Subject           string `json:"sub"`
	PreferredUsername string `json:"preferred_username"`
	Email             string `json:"email"`
	EmailVerified     *bool  `json:"email_verified"`
}

// Login is the relying-party side of upstream sign-in.
type Login struct {
	cfg Config

	mu       sync.Mutex
	provider *oidc.Provider
}

// New makes a Login; nothing is fetched until the first sign-in.
func New(cfg Config) (*Login, error) {
	if cfg.Issuer == "" || cfg.ClientID == "" || cfg.RedirectURL == "" {
		return nil, errors.New("upstream: issuer, client id and redirect URL are required")
	}
	return &Login{cfg: cfg}, nil
}

func (l *Login) ctx(ctx context.Context) context.Context {
	if l.cfg.HTTPClient != nil {
		return oidc.ClientContext(ctx, l.cfg.HTTPClient)
	}
	return ctx
}

func (l *Login) discover(ctx context.Context) (*oidc.Provider, *oauth2.Config, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.provider == nil {
		p, err := oidc.NewProvider(l.ctx(ctx), l.cfg.Issuer)
		if err != nil {
			return nil, nil, fmt.Errorf("upstream: discover %s: %w", l.cfg.Issuer, err)
		}
		l.provider = p
	}
	oc := &oauth2.Config{ClientID: l.cfg.ClientID, ClientSecret: l.cfg.ClientSecret,
		RedirectURL: l.cfg.RedirectURL, Endpoint: l.provider.Endpoint(),
		Scopes: []string{oidc.ScopeOpenID, "profile", "email"}}
	return l.provider, oc, nil
}

// AuthURL answers where to send the browser. state, nonce and verifier
// are the caller's, kept for Exchange.
func (l *Login) AuthURL(ctx context.Context, state, nonce, verifier string) (string, error) {
	_, oc, err := l.discover(ctx)
	if err != nil {
		return "", err
	}
	return oc.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), nil
}

// Exchange redeems the code and answers the verified ID token's claims.
func (l *Login) Exchange(ctx context.Context, code, nonce, verifier string) (Claims, error) {
	p, oc, err := l.discover(ctx)
	if err != nil {
		return Claims{}, err
	}
	ctx = l.ctx(ctx)
	tok, err := oc.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		return Claims{}, fmt.Errorf("upstream: code exchange: %w", err)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok || raw == "" {
		return Claims{}, errors.New("upstream: token response has no id_token")
	}
	idt, err := p.Verifier(&oidc.Config{ClientID: l.cfg.ClientID}).Verify(ctx, raw)
	if err != nil {
		return Claims{}, fmt.Errorf("upstream: id token: %w", err)
	}
	if idt.Nonce != nonce {
		return Claims{}, errors.New("upstream: id token nonce does not match")
	}
	var c Claims
	if err := idt.Claims(&c); err != nil {
		return Claims{}, fmt.Errorf("upstream: id token claims: %w", err)
	}
	return c, nil
}
