package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/mailcore"
	"github.com/egretair/egret/sso/oauthbearer"
	"github.com/egretair/egret/sso/oidcp"
	"github.com/egretair/egret/sso/upstream"
)

// tokenAccounts is mailAccounts that also takes access tokens issued by
// egret's provider (mailcore.TokenAuthenticator), for OAUTHBEARER and
// XOAUTH2.
type tokenAccounts struct {
	mailAccounts
	verifier *oauthbearer.Verifier
}

func (t tokenAccounts) AuthenticateToken(ctx context.Context, user, token string) (mailcore.Account, error) {
	who, err := t.verifier.Verify(ctx, user, token)
	if errors.Is(err, oauthbearer.ErrInvalidToken) {
		return mailcore.Account{}, mailcore.ErrBadCredentials
	}
	if err != nil {
		return mailcore.Account{}, err
	}
	// The account, found by its address as delivery finds it, so the
	// session is the one a password sign-in would give.
	a, err := t.store.LookupAddress(ctx, who.Email)
	if errors.Is(err, directory.ErrNotFound) {
		return mailcore.Account{}, mailcore.ErrBadCredentials
	}
	return mailcore.Account(a), err
}

// oidcProvider makes the OpenID Connect provider, or answers nil when
// no issuer is configured.
func (a *app) oidcProvider(ctx context.Context, dir *directory.Store) (*oidcp.Provider, error) {
	iss := a.cfg.issuer()
	if iss == "" {
		a.log.Info("oidc provider off", slog.String("cause", "no oidc.issuer and http.addr is not loopback"))
		return nil, nil
	}
	cfg := oidcp.Config{Issuer: iss, Store: dir, KeyGrace: a.cfg.OIDC.KeyGrace,
		Guard: a.loginGuard(dir, a.log), Log: a.log}
	if u := a.cfg.OIDC; u.UpstreamIssuer != "" {
		up, err := upstream.New(upstream.Config{Issuer: u.UpstreamIssuer, ClientID: u.UpstreamClientID,
			ClientSecret: u.UpstreamClientSecret, RedirectURL: iss + oidcp.UpstreamCallbackPath})
		if err != nil {
			return nil, err
		}
		cfg.Upstream = up
	}
	return oidcp.New(ctx, cfg)
}

// withOIDC serves the provider's paths beside the API.
func withOIDC(api http.Handler, p *oidcp.Provider) http.Handler {
	if p == nil {
		return api
	}
	mux := http.NewServeMux()
	mux.Handle("/", api)
	mux.Handle("/.well-known/openid-configuration", p)
	mux.Handle("/oidc/", p)
	return mux
}
