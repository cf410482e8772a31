package oidcp

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// ScopeMail is the scope that makes an access token good for IMAP and
// submission (RFC 7628).
const ScopeMail = "mail"

// ClaimMail is the private access-token claim set when ScopeMail was
// granted; ID tokens never carry it.
const ClaimMail = "egret_mail"

// Lifetimes of what the provider hands out.
const (
	// RequestLifetime bounds the time from /authorize to the code.
	RequestLifetime = 10 * time.Minute
	// CodeLifetime bounds an unredeemed code (RFC 6749 §4.1.2
	// recommends at most ten minutes).
	CodeLifetime = time.Minute
	// AccessTokenLifetime bounds access tokens; there are no refresh
	// tokens, so a mail client signs in again after it.
	AccessTokenLifetime = time.Hour
	// IDTokenLifetime bounds ID tokens.
	IDTokenLifetime = time.Hour
)

// authRequest is one authorization request in flight.
type authRequest struct {
	id        string
	req       oidc.AuthRequest
	created   time.Time
	subject   string
	authTime  time.Time
	amr       []string
	done      bool
	code      string
	codeAt    time.Time
	sessionID string
}

var _ op.AuthRequest = (*authRequest)(nil)

func (a *authRequest) GetID() string          { return a.id }
func (a *authRequest) GetACR() string         { return "" }
func (a *authRequest) GetAMR() []string       { return a.amr }
func (a *authRequest) GetAudience() []string  { return []string{a.req.ClientID} }
func (a *authRequest) GetAuthTime() time.Time { return a.authTime }
func (a *authRequest) GetClientID() string    { return a.req.ClientID }
func (a *authRequest) GetNonce() string       { return a.req.Nonce }
func (a *authRequest) GetRedirectURI() string { return a.req.RedirectURI }
func (a *authRequest) GetScopes() []string    { return a.req.Scopes }
func (a *authRequest) GetState() string       { return a.req.State }
func (a *authRequest) GetSubject() string     { return a.subject }
func (a *authRequest) Done() bool             { return a.done }
func (a *authRequest) GetResponseMode() oidc.ResponseMode {
	return a.req.ResponseMode
}
func (a *authRequest) GetResponseType() oidc.ResponseType {
	return a.req.ResponseType
}
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge {
	if a.req.CodeChallenge == "" {
		return nil
	}
	return &oidc.CodeChallenge{Challenge: a.req.CodeChallenge,
		Method: a.req.CodeChallengeMethod}
}

// notFound tells op that a lookup found nothing.
type notFound struct{ what string }

func (e notFound) Error() string { return "oidcp: " + e.what + " not found" }
func (notFound) IsNotFound()     {}

// storage is op.Storage over the database (clients, keys), the
// directory (users) and memory (requests, codes).
type storage struct {
	clients  Clients
	keys     Keys
	users    Users
	loginURL func(id string) string
	sessions *sessions

	mu       sync.Mutex
	requests map[string]*authRequest
	codes    map[string]string // code -> request id
}

var _ op.Storage = (*storage)(nil)

func newStorage(c Clients, k Keys, u Users, s *sessions) *storage {
	return &storage{clients: c, keys: k, users: u, sessions: s,
		requests: map[string]*authRequest{}, codes: map[string]string{}}
}

// sweep drops requests and codes past their lifetime; called with mu
// held.
func (s *storage) sweep(now time.Time) {
	for id, r := range s.requests {
		if now.Sub(r.created) > RequestLifetime ||
			(r.code != "" && now.Sub(r.codeAt) > CodeLifetime) {
			delete(s.codes, r.code)
			delete(s.requests, id)
		}
	}
}

// CreateAuthRequest keeps a validated authorization request. PKCE is
// enforced here beyond what op checks: S256 only, and always for a
// public client (RFC 7636 §4.2, §7.2).
func (s *storage) CreateAuthRequest(ctx context.Context, req *oidc.AuthRequest, userID string) (op.AuthRequest, error) {
	c, err := s.clients.Get(ctx, req.ClientID)
	if err != nil {
		return nil, oidc.ErrInvalidClient().WithParent(err)
	}
	if req.CodeChallenge != "" && req.CodeChallengeMethod != oidc.CodeChallengeMethodS256 {
		return nil, oidc.ErrInvalidRequest().WithDescription("code_challenge_method must be S256")
	}
	if c.Public() && req.CodeChallenge == "" {
		return nil, oidc.ErrInvalidRequest().WithDescription("PKCE with S256 is required for this client")
	}
	r := &authRequest{id: randomString(24), req: *req, created: time.Now()}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep(r.created)
	s.requests[r.id] = r
	return r, nil
}

// request answers a request by id.
func (s *storage) request(id string) (*authRequest, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep(time.Now())
	r, ok := s.requests[id]
	return r, ok
}

// complete marks a request signed in by subject.
func (s *storage) complete(id, subject, sessionID string, amr []string, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.requests[id]
	if !ok || r.done {
		return notFound{"authorization request"}
	}
	r.subject, r.done, r.amr, r.authTime, r.sessionID = subject, true, amr, at, sessionID
	return nil
}

func (s *storage) AuthRequestByID(ctx context.Context, id string) (op.AuthRequest, error) {
	r, ok := s.request(id)
	if !ok {
		return nil, notFound{"authorization request"}
	}
	return r, nil
}

func (s *storage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep(time.Now())
	id, ok := s.codes[code]
	if !ok {
		return nil, notFound{"code"}
	}
	return s.requests[id], nil
}

func (s *storage) SaveAuthCode(ctx context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.requests[id]
	if !ok || r.code != "" {
		// One code per request: a second callback for the same
		// request gets none.
		return notFound{"authorization request"}
	}
	r.code, r.codeAt = code, time.Now()
	s.codes[code] = id
	return nil
}

// DeleteAuthRequest is called when a code is redeemed: the code dies
// with the request (RFC 6749 §4.1.2, used once).
func (s *storage) DeleteAuthRequest(ctx context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.requests[id]; ok {
		delete(s.codes, r.code)
		delete(s.requests, id)
	}
	return nil
}

func (s *storage) CreateAccessToken(ctx context.Context, req op.TokenRequest) (string, time.Time, error) {
	return randomString(16), time.Now().Add(AccessTokenLifetime), nil
}

func (s *storage) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	return "", "", time.Time{}, oidc.ErrUnsupportedGrantType().WithDescription("refresh tokens are not issued")
}

func (s *storage) TokenRequestByRefreshToken(ctx context.Context, token string) (op.RefreshTokenRequest, error) {
	return nil, op.ErrInvalidRefreshToken
}

// TerminateSession ends the user's sign-in session at the provider.
func (s *storage) TerminateSession(ctx context.Context, userID, clientID string) error {
	s.sessions.endSubject(userID)
	return nil
}

// RevokeToken is refused: access tokens are self-contained JWTs and
// live an hour.
// Not yet: revocation of issued access tokens; disabling the account
// stops their use at the mail servers, which check the directory.
func (s *storage) RevokeToken(ctx context.Context, token, userID, clientID string) *oidc.Error {
	return oidc.ErrServerError().WithDescription("token revocation is not offered")
}

func (s *storage) GetRefreshTokenInfo(ctx context.Context, clientID, token string) (string, string, error) {
	return "", "", op.ErrInvalidRefreshToken
}

func (s *storage) SigningKey(ctx context.Context) (op.SigningKey, error) {
	k, err := s.keys.Active(ctx)
	if err != nil {
		return nil, err
	}
	return signingKey{k}, nil
}

func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *storage) KeySet(ctx context.Context) ([]op.Key, error) {
	ks, err := s.keys.Published(ctx)
	if err != nil {
		return nil, err
	}
	if len(ks) == 0 {
		k, err := s.keys.Active(ctx)
		if err != nil {
			return nil, err
		}
		ks = []Key{k}
	}
	out := make([]op.Key, len(ks))
	for i, k := range ks {
		out[i] = publicKey{k}
	}
	return out, nil
}

func (s *storage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.clients.Get(ctx, id)
	if errors.Is(err, ErrNoClient) {
		return nil, notFound{"client"}
	}
	if err != nil {
		return nil, err
	}
	return opClient{c: c, loginURL: s.loginURL, idLife: IDTokenLifetime}, nil
}

func (s *storage) AuthorizeClientIDSecret(ctx context.Context, id, secret string) error {
	c, err := s.clients.Get(ctx, id)
	if err != nil || !c.checkSecret(secret) {
		return oidc.ErrInvalidClient().WithDescription("invalid client_id or client_secret")
	}
	return nil
}

func (s *storage) SetUserinfoFromScopes(ctx context.Context, info *oidc.UserInfo, userID, clientID string, scopes []string) error {
	return s.userinfo(ctx, info, userID, scopes)
}

func (s *storage) SetUserinfoFromToken(ctx context.Context, info *oidc.UserInfo, tokenID, subject, origin string) error {
	return s.userinfo(ctx, info, subject, []string{oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeEmail})
}

// userinfo fills the claims of the scopes granted (OpenID Connect Core
// §5.4): sub always, preferred_username and name with profile, email
// with email.
func (s *storage) userinfo(ctx context.Context, info *oidc.UserInfo, subject string, scopes []string) error {
	id, err := s.users.BySubject(ctx, subject)
	if err != nil {
		return fmt.Errorf("oidcp: userinfo: %w", err)
	}
	info.Subject = id.Subject
	if slices.Contains(scopes, oidc.ScopeProfile) {
		info.PreferredUsername = id.Login
		info.Name = id.Name
	}
	if slices.Contains(scopes, oidc.ScopeEmail) {
		info.Email = id.Email
		// The directory hands the address out itself.
		info.EmailVerified = true
	}
	return nil
}

func (s *storage) SetIntrospectionFromToken(ctx context.Context, resp *oidc.IntrospectionResponse, tokenID, subject, clientID string) error {
	return oidc.ErrUnauthorizedClient().WithDescription("introspection is not offered")
}

// GetPrivateClaimsFromScopes adds ClaimMail to the access token of a
// request that was granted ScopeMail. op calls it for access tokens only.
func (s *storage) GetPrivateClaimsFromScopes(ctx context.Context, userID, clientID string, scopes []string) (map[string]any, error) {
	if slices.Contains(scopes, ScopeMail) {
		return map[string]any{ClaimMail: true}, nil
	}
	return nil, nil
}

func (s *storage) GetKeyByIDAndClientID(ctx context.Context, keyID, clientID string) (*jose.JSONWebKey, error) {
	return nil, notFound{"client key"}
}

func (s *storage) ValidateJWTProfileScopes(ctx context.Context, userID string, scopes []string) ([]string, error) {
	return nil, oidc.ErrUnauthorizedClient()
}

func (s *storage) Health(ctx context.Context) error {
	return s.clients.DB.WithContext(ctx).Exec("SELECT 1").Error
}
