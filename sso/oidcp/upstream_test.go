package oidcp_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/egretair/egret/sso/oidcp"
	"github.com/egretair/egret/sso/upstream"
)

var upstreamLink = regexp.MustCompile(`href="(/oidc/upstream\?id=[^"]+)"`)

// TestUpstreamSignIn runs two providers on loopback: "company" plays the
// company identity provider, and "egret" signs its users in through it,
// mapping them by login.
func TestUpstreamSignIn(t *testing.T) {
	ctx := context.Background()
	company := newFixture(t, oidcp.Config{})
	addPerson(t, company.store, "Ghost")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	egretIssuer := "http://" + ln.Addr().String()
	_, secret, err := company.prov.Clients().Add(ctx, oidcp.NewClient{ID: "egret",
		RedirectURIs: []string{egretIssuer + oidcp.UpstreamCallbackPath}})
	if err != nil {
		t.Fatal(err)
	}
	up, err := upstream.New(upstream.Config{Issuer: company.issuer, ClientID: "egret",
		ClientSecret: secret, RedirectURL: egretIssuer + oidcp.UpstreamCallbackPath})
	if err != nil {
		t.Fatal(err)
	}
	eg := newFixtureOn(t, ln, oidcp.Config{Upstream: up})
	const redirect = "http://127.0.0.1:9/app"
	eg.prov.Clients().Add(ctx, oidcp.NewClient{ID: "app", Public: true, RedirectURIs: []string{redirect}})
	r := newRP(t, eg.issuer, "app", "", redirect)

	// through opens egret's login page, follows the company link and
	// signs in there as user.
	through := func(t *testing.T, user, verifier string) *http.Response {
		c := browser(t, redirect)
		resp, err := c.Get(r.oauth.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)))
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := upstreamLink.FindSubmatch(page)
		if m == nil {
			t.Fatalf("the login page shows no company sign-in:\n%s", page)
		}
		return signIn(t, c, eg.issuer+strings.ReplaceAll(string(m[1]), "&amp;", "&"), user, password)
	}

	t.Run("a company user known to the directory signs in", func(t *testing.T) {
		v := oauth2.GenerateVerifier()
		code := codeFrom(t, through(t, "lina", v), redirect, "st")
		tok, err := r.oauth.Exchange(ctx, code, oauth2.VerifierOption(v))
		if err != nil {
			t.Fatal(err)
		}
		idt, err := r.verifier.Verify(ctx, tok.Extra("id_token").(string))
		if err != nil {
			t.Fatal(err)
		}
		if idt.Subject != eg.person.ID {
			t.Fatalf("signed in as %s, want egret's person %s (company's is %s)", idt.Subject, eg.person.ID, company.person.ID)
		}
	})

	t.Run("a company user unknown to the directory is refused", func(t *testing.T) {
		resp := through(t, "ghost", oauth2.GenerateVerifier())
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("unknown user: %s, want 403", resp.Status)
		}
	})

	t.Run("a disabled user is refused", func(t *testing.T) {
		eg.store.DB().Exec("UPDATE accounts SET status = 'disabled'")
		defer eg.store.DB().Exec("UPDATE accounts SET status = 'enabled'")
		resp := through(t, "lina", oauth2.GenerateVerifier())
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("disabled user: %s, want 403", resp.Status)
		}
	})
}
