package oidcp

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"gorm.io/gorm"
)

// ErrNoClient is answered for a client id that is not registered.
var ErrNoClient = errors.New("oidcp: no such client")

// ErrClientExists is answered when a client id is taken.
var ErrClientExists = errors.New("oidcp: client id already registered")

// Client is a registered relying party.
type Client struct {
	ID   string `gorm:"primaryKey" json:"id"`
	Name string `json:"name"`
	// SecretHash is the hex SHA-256 of the secret; empty for a public
	// client.
	SecretHash string `json:"-"`
	// RedirectURIs and PostLogoutURIs are kept one per line.
	RedirectURIs   string    `gorm:"column:redirect_uris" json:"-"`
	PostLogoutURIs string    `gorm:"column:post_logout_uris" json:"-"`
	CreatedAt      time.Time `json:"created_at"`
}

// TableName names the table of migration 00008.
func (Client) TableName() string { return "oidc_clients" }

// Public reports whether the client has no secret.
func (c *Client) Public() bool { return c.SecretHash == "" }

// Redirects answers the registered redirect URIs.
func (c *Client) Redirects() []string { return lines(c.RedirectURIs) }

// PostLogoutRedirects answers the registered post-logout redirect URIs.
func (c *Client) PostLogoutRedirects() []string { return lines(c.PostLogoutURIs) }

func lines(s string) []string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// NewClient is what registering a client takes.
type NewClient struct {
	// ID is the client_id; empty picks a random one.
	ID   string `json:"id"`
	Name string `json:"name"`
	// Public makes a client without a secret, which must use PKCE.
	Public         bool     `json:"public"`
	RedirectURIs   []string `json:"redirect_uris"`
	PostLogoutURIs []string `json:"post_logout_redirect_uris"`
}

var clientIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{3,64}$`)

// checkRedirect refuses what RFC 6749 §3.1.2 forbids (a relative URI, a
// fragment) and plain http anywhere but loopback (RFC 8252 §7.3 permits
// it there for native apps).
func checkRedirect(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Fragment != "" {
		return fmt.Errorf("oidcp: redirect URI %q: want an absolute URI without a fragment", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		h := u.Hostname()
		if h == "localhost" || strings.HasPrefix(h, "127.") || h == "::1" {
			return nil
		}
	}
	return fmt.Errorf("oidcp: redirect URI %q: want https, or http on loopback", raw)
}

// Clients is the table of registered clients.
type Clients struct{ DB *gorm.DB }

// Add registers a client and answers it with its secret (empty for a
// public client). The secret is shown once: only its digest is kept.
func (cs Clients) Add(ctx context.Context, n NewClient) (*Client, string, error) {
	if n.ID == "" {
		n.ID = randomString(12)
	}
	if !clientIDPattern.MatchString(n.ID) {
		return nil, "", fmt.Errorf("oidcp: client id %q: want 3 to 64 of A-Z a-z 0-9 . _ -", n.ID)
	}
	if n.Name == "" {
		n.Name = n.ID
	}
	if len(n.Name) > 128 {
		return nil, "", errors.New("oidcp: client name longer than 128 bytes")
	}
	if len(n.RedirectURIs) == 0 {
		return nil, "", errors.New("oidcp: a client needs at least one redirect URI")
	}
	for _, u := range slices.Concat(n.RedirectURIs, n.PostLogoutURIs) {
		if err := checkRedirect(u); err != nil {
			return nil, "", err
		}
	}
	c := &Client{ID: n.ID, Name: n.Name, CreatedAt: time.Now().UTC(),
		RedirectURIs:   strings.Join(n.RedirectURIs, "\n"),
		PostLogoutURIs: strings.Join(n.PostLogoutURIs, "\n")}
	var secret string
	if !n.Public {
		secret = randomString(32)
		c.SecretHash = digest(secret)
	}
	var n0 int64
	db := cs.DB.WithContext(ctx)
	if err := db.Model(&Client{}).Where("id = ?", c.ID).Count(&n0).Error; err != nil {
		return nil, "", fmt.Errorf("oidcp: add client %s: %w", c.ID, err)
	}
	if n0 > 0 {
		return nil, "", fmt.Errorf("%w: %s", ErrClientExists, c.ID)
	}
	if err := db.Create(c).Error; err != nil {
		return nil, "", fmt.Errorf("oidcp: add client %s: %w", c.ID, err)
	}
	return c, secret, nil
}

// List answers every client by id.
func (cs Clients) List(ctx context.Context) ([]Client, error) {
	var out []Client
	if err := cs.DB.WithContext(ctx).Order("id").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("oidcp: list clients: %w", err)
	}
	return out, nil
}

// Get answers one client.
func (cs Clients) Get(ctx context.Context, id string) (*Client, error) {
	var c Client
	err := cs.DB.WithContext(ctx).Where("id = ?", id).Take(&c).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrNoClient, id)
	}
	if err != nil {
		return nil, fmt.Errorf("oidcp: client %s: %w", id, err)
	}
	return &c, nil
}

// Remove unregisters a client. Tokens already issued to it stay valid
// until they expire.
func (cs Clients) Remove(ctx context.Context, id string) error {
	res := cs.DB.WithContext(ctx).Where("id = ?", id).Delete(&Client{})
	if res.Error != nil {
		return fmt.Errorf("oidcp: remove client %s: %w", id, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("%w: %s", ErrNoClient, id)
	}
	return nil
}

// checkSecret compares a presented secret with the stored digest in
// constant time.
func (c *Client) checkSecret(secret string) bool {
	if c.Public() || secret == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(digest(secret)), []byte(c.SecretHash)) == 1
}

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// randomString answers n random bytes, base64url without padding.
func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// opClient is a Client as zitadel's op package sees it.
type opClient struct {
	c        *Client
	loginURL func(id string) string
	idLife   time.Duration
}

var _ op.Client = opClient{}

func (o opClient) GetID() string                    { return o.c.ID }
func (o opClient) RedirectURIs() []string           { return o.c.Redirects() }
func (o opClient) PostLogoutRedirectURIs() []string { return o.c.PostLogoutRedirects() }
func (o opClient) LoginURL(id string) string        { return o.loginURL(id) }
func (o opClient) AccessTokenType() op.AccessTokenType {
	// JWTs, so that the mail servers verify them without a lookup.
	return op.AccessTokenTypeJWT
}
func (o opClient) IDTokenLifetime() time.Duration { return o.idLife }
func (o opClient) DevMode() bool                  { return false }
func (o opClient) ClockSkew() time.Duration       { return 0 }

// ApplicationType is "native" for a public client: op then takes a
// loopback redirect URI on any port (RFC 8252 §7.3) besides https ones.
// A confidential client is "web".
func (o opClient) ApplicationType() op.ApplicationType {
	if o.c.Public() {
		return op.ApplicationTypeNative
	}
	return op.ApplicationTypeWeb
}

// AuthMethod is none for a public client, which op then holds to PKCE,
// and client_secret_basic (or _post) otherwise.
func (o opClient) AuthMethod() oidc.AuthMethod {
	if o.c.Public() {
		return oidc.AuthMethodNone
	}
	return oidc.AuthMethodBasic
}

func (o opClient) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}

func (o opClient) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeCode}
}

func (o opClient) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

func (o opClient) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// IsScopeAllowed admits the one scope egret adds to the standard ones:
// "mail", which lets the access token sign in to IMAP and submission.
func (o opClient) IsScopeAllowed(scope string) bool { return scope == ScopeMail }

// IDTokenUserinfoClaimsAssertion puts the profile claims in the ID
// token, so a relying party need not call userinfo.
func (o opClient) IDTokenUserinfoClaimsAssertion() bool { return true }
