// Package oidcp is egret's OpenID Connect provider: company applications
// (relying parties) send their users here to sign in with their
// directory password, or through the upstream identity provider, and get
// back an ID token naming the person (OpenID Connect Core 1.0 §3.1, the
// authorization code flow). The protocol itself (discovery, the
// authorization, token, userinfo and end-session endpoints, the JWKS) is
// zitadel's op package; this package supplies its storage, the login
// page and the keys.
//
// # Security contract
//
//   - Only registered clients are served, and only at the redirect URIs
//     registered for them, compared exactly (RFC 6749 §3.1.2.3). A
//     confidential client authenticates at the token endpoint with its
//     secret, of which only the SHA-256 digest is stored. A public
//     client has no secret and must use PKCE with S256 (RFC 7636 §4.2);
//     "plain" is refused for every client.
//   - An authorization code is used once: it is deleted when it is
//     redeemed, and lives at most CodeLifetime besides. A code is bound
//     to its client, its redirect URI and, with PKCE, its verifier.
//   - The login form is protected against cross-site request forgery
//     by a per-form token that must match a cookie (double submit) and
//     is tied to the authorization request. Passwords are checked by the
//     directory, which does not tell an unknown name from a wrong
//     password; only enabled accounts of active people sign in. With
//     Config.Guard set, every attempt goes through the login guard
//     egret's mail servers share (package sso/guard): failures per user
//     and per client address bring growing delays and then a lockout,
//     during which even the right password gets the wrong-password page.
//   - Tokens are JWTs signed with RS256 by the newest key in the
//     oidc_keys table. Rotate adds a key and retires the old one, which
//     stays in the JWKS for the grace period so that tokens it signed
//     still verify. An access token carries the private claim
//     "egret_mail" only when the "mail" scope was granted: the mail
//     servers accept no other token (package oauthbearer).
//   - The subject (sub) is the person's stable id in the directory;
//     preferred_username is the login, then email and name.
//
// # State
//
// Clients and keys are in the database (migration 00008). Authorization
// requests, codes and browser sign-in sessions live in this process's
// memory: a restart signs everyone out of the provider (not out of the
// applications) and voids codes in flight, and a node behind a load
// balancer must get a user's requests on one node.
// Not yet: sticky sessions are required with more than one front node.
package oidcp
