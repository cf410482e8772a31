// Package oauthbearer checks the access tokens that mail clients present
// with the OAUTHBEARER (RFC 7628) and XOAUTH2 SASL mechanisms.
//
// # Security contract
//
// Verify accepts a token only when all of these hold:
//
//   - it is a compact JWS signed with RS256 by a key the provider
//     publishes now (the active key or one retired within the grace
//     period, package oidcp); the algorithm is fixed, so "none" and
//     HMAC tricks with the public key are refused;
//   - its issuer is the configured issuer, and it is inside its
//     validity (exp, nbf) with one minute of clock skew;
//   - it carries the "egret_mail" claim, which only access tokens
//     granted the "mail" scope have: ID tokens and access tokens for
//     other purposes are refused;
//   - its subject is a person whose account is enabled now, and the
//     user the client names in the SASL message, when it names one, is
//     that person's login or mail address.
//
// Failures are not told apart to the client; the log line says which
// check failed, never the token.
package oauthbearer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/egretair/egret/sso/oidcp"
)

// ErrInvalidToken is answered for any token that does not verify.
var ErrInvalidToken = errors.New("oauthbearer: invalid token")

// skew is the clock difference tolerated on exp and nbf.
const skew = time.Minute

// Verifier checks access tokens against the provider's keys.
type Verifier struct {
	Issuer string
	Keys   oidcp.Keys
	Users  oidcp.Users
}

type claims struct {
	Issuer    string  `json:"iss"`
	Subject   string  `json:"sub"`
	Expiry    float64 `json:"exp"`
	NotBefore float64 `json:"nbf"`
	Mail      bool    `json:"egret_mail"`
}

// Verify checks token for user (empty when the client named none) and
// answers the identity it belongs to. A database that cannot answer
// gives an error that is not ErrInvalidToken.
func (v *Verifier) Verify(ctx context.Context, user, token string) (oidcp.Identity, error) {
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil || len(jws.Signatures) != 1 {
		return oidcp.Identity{}, fmt.Errorf("%w: not a signed JWT", ErrInvalidToken)
	}
	kid := jws.Signatures[0].Header.KeyID
	keys, err := v.Keys.Published(ctx)
	if err != nil {
		return oidcp.Identity{}, err
	}
	var payload []byte
	for _, k := range keys {
		if k.ID == kid {
			payload, err = jws.Verify(&k.Private.PublicKey)
			break
		}
	}
	if payload == nil || err != nil {
		return oidcp.Identity{}, fmt.Errorf("%w: signature (key %q)", ErrInvalidToken, kid)
	}

	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return oidcp.Identity{}, fmt.Errorf("%w: claims: %v", ErrInvalidToken, err)
	}
	now := time.Now()
	switch {
	case c.Issuer != strings.TrimSuffix(v.Issuer, "/"):
		return oidcp.Identity{}, fmt.Errorf("%w: issuer %q", ErrInvalidToken, c.Issuer)
	case c.Expiry == 0 || now.After(time.Unix(int64(c.Expiry), 0).Add(skew)):
		return oidcp.Identity{}, fmt.Errorf("%w: expired", ErrInvalidToken)
	case c.NotBefore != 0 && now.Add(skew).Before(time.Unix(int64(c.NotBefore), 0)):
		return oidcp.Identity{}, fmt.Errorf("%w: not yet valid", ErrInvalidToken)
	case !c.Mail:
		return oidcp.Identity{}, fmt.Errorf("%w: no mail scope", ErrInvalidToken)
	case c.Subject == "":
		return oidcp.Identity{}, fmt.Errorf("%w: no subject", ErrInvalidToken)
	}

	who, err := v.Users.BySubject(ctx, c.Subject)
	if errors.Is(err, oidcp.ErrRefused) {
		return oidcp.Identity{}, fmt.Errorf("%w: person %s may not sign in", ErrInvalidToken, c.Subject)
	}
	if err != nil {
		return oidcp.Identity{}, err
	}
	if user != "" && !strings.EqualFold(user, who.Login) && !strings.EqualFold(user, who.Email) {
		return oidcp.Identity{}, fmt.Errorf("%w: user %q is not the token's subject %s", ErrInvalidToken, user, c.Subject)
	}
	return who, nil
}
