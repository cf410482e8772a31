// Package oauthsasl is the server side of the SASL mechanisms that carry
// an OAuth 2.0 bearer token: OAUTHBEARER (RFC 7628) and XOAUTH2 (the
// older form Google and Microsoft clients speak). imapd and submission
// use it; the token itself is checked by the Check function they give,
// which is where they put their login guard (mailcore.AuthenticateToken):
// a refused token counts as a wrong password, and a locked-out user or
// address is refused, whatever the token, with the same challenge.
//
// # Failure
//
// RFC 7628 §3.2.2: a token that is refused is answered with a challenge
// holding a JSON error status, and the exchange ends only after the
// client's dummy response (a single 0x01 for OAUTHBEARER, anything for
// XOAUTH2); then Next answers the error the caller chose for a failed
// sign-in. A malformed message fails at once, as does a temporary
// failure of Check, with no JSON challenge: there is nothing the client
// could learn from one.
package oauthsasl

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"

	"github.com/emersion/go-sasl"
)

// Mechanism names.
const (
	OAuthBearer = "OAUTHBEARER"
	XOAuth2     = "XOAUTH2"
)

// ErrRefused is what Check answers for a token that does not verify.
var ErrRefused = errors.New("oauthsasl: token refused")

// ErrMalformed is answered for a client message that is not of the
// mechanism's form.
var ErrMalformed = errors.New("oauthsasl: malformed client response")

// Check verifies token for user (empty when the client named none).
// It answers ErrRefused, or wraps it, for a bad token; any other error is
// temporary.
type Check func(user, token string) error

// Server is one exchange.
type Server struct {
	mech  string
	check Check
	// fail is answered after the dummy response.
	fail    error
	refused bool
	done    bool
}

// New starts an exchange of mech (OAuthBearer or XOAuth2). fail is the
// error Next answers once a refused client has sent its dummy response.
func New(mech string, check Check, fail error) *Server {
	return &Server{mech: mech, check: check, fail: fail}
}

var _ sasl.Server = (*Server)(nil)

// Next takes the client's next message.
func (s *Server) Next(resp []byte) ([]byte, bool, error) {
	if s.refused {
		// The dummy response; its content does not matter.
		return nil, true, s.fail
	}
	if s.done {
		return nil, true, sasl.ErrUnexpectedClientResponse
	}
	if resp == nil {
		// No initial response: ask for it with an empty challenge.
		return []byte{}, false, nil
	}
	s.done = true

	var user, token string
	var ok bool
	if s.mech == XOAuth2 {
		user, token, ok = parseXOAuth2(resp)
	} else {
		user, token, ok = parseOAuthBearer(resp)
	}
	if !ok {
		return nil, true, ErrMalformed
	}
	err := s.check(user, token)
	if err == nil {
		return nil, true, nil
	}
	if !errors.Is(err, ErrRefused) {
		return nil, true, err
	}
	s.refused = true
	status := "invalid_token"
	if s.mech == XOAuth2 {
		status = "401"
	}
	blob, _ := json.Marshal(map[string]string{"status": status,
		"schemes": "bearer", "scope": "openid mail"})
	return blob, false, nil
}

// parseOAuthBearer reads RFC 7628 §3.1's client response:
// gs2-header kvsep *(kvpair) kvsep, where gs2-header is "n,a=USER," or
// "n,,", kvsep is 0x01, and auth=Bearer TOKEN is the pair that counts.
func parseOAuthBearer(b []byte) (user, token string, ok bool) {
	head, rest, found := bytes.Cut(b, []byte{0x01})
	if !found {
		return "", "", false
	}
	gs2 := strings.Split(string(head), ",")
	// Channel binding is not offered: the flag must be "n" (or "y",
	// the client could but thinks the server cannot, RFC 5801 §5).
	if len(gs2) != 3 || (gs2[0] != "n" && gs2[0] != "y") || gs2[2] != "" {
		return "", "", false
	}
	if a := gs2[1]; a != "" {
		if !strings.HasPrefix(a, "a=") {
			return "", "", false
		}
		// RFC 5801 §5: "=2C" and "=3D" stand for "," and "=".
		user = strings.NewReplacer("=2C", ",", "=3D", "=").Replace(a[2:])
	}
	token, ok = bearerPair(rest)
	return user, token, ok
}

// parseXOAuth2 reads "user=USER\x01auth=Bearer TOKEN\x01\x01".
func parseXOAuth2(b []byte) (user, token string, ok bool) {
	first, rest, found := bytes.Cut(b, []byte{0x01})
	if !found || !bytes.HasPrefix(first, []byte("user=")) {
		return "", "", false
	}
	user = string(first[len("user="):])
	token, ok = bearerPair(rest)
	return user, token, ok && user != ""
}

// bearerPair finds auth=Bearer TOKEN among 0x01-separated pairs ending in
// an empty one.
func bearerPair(b []byte) (string, bool) {
	if !bytes.HasSuffix(b, []byte{0x01}) {
		return "", false
	}
	var token string
	for p := range bytes.SplitSeq(b[:len(b)-1], []byte{0x01}) {
		k, v, _ := bytes.Cut(p, []byte("="))
		if string(k) != "auth" {
			continue
		}
		scheme, t, found := strings.Cut(string(v), " ")
		// The scheme name is case-insensitive (RFC 6750 §2.1).
		if !found || !strings.EqualFold(scheme, "bearer") {
			return "", false
		}
		token = strings.TrimSpace(t)
	}
	return token, token != ""
}
