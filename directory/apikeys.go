package directory

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
)

// ScopeAll grants every scope.
const ScopeAll = "*"

// ErrBadKey is answered for an unknown or revoked API key.
var ErrBadKey = errors.New("directory: invalid API key")

// HashKey answers the digest under which an API key's secret is kept.
func HashKey(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// HasScope reports whether the key grants scope.
func (k *APIKey) HasScope(scope string) bool {
	for _, s := range strings.Fields(k.Scopes) {
		if s == ScopeAll || s == scope {
			return true
		}
	}
	return false
}

// CreateAPIKey makes a new key with the given scopes and answers it with
// its secret, which is shown this once and kept only as a digest.
func (s *Store) CreateAPIKey(ctx context.Context, name string, scopes []string) (*APIKey, string, error) {
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return nil, "", err
	}
	secret := "egk_" + base64.RawURLEncoding.EncodeToString(buf)
	k, err := s.putAPIKey(ctx, name, secret, scopes)
	return k, secret, err
}

// EnsureAPIKey makes sure a key with this name and secret exists with the
// given scopes: it is created, or its secret and scopes are replaced. It
// seeds the bootstrap key that automation sets in the environment.
func (s *Store) EnsureAPIKey(ctx context.Context, name, secret string, scopes []string) (*APIKey, error) {
	if len(secret) < 16 {
		return nil, fmt.Errorf("directory: API key %q: secret must have at least 16 characters", name)
	}
	return s.putAPIKey(ctx, name, secret, scopes)
}

func (s *Store) putAPIKey(ctx context.Context, name, secret string, scopes []string) (*APIKey, error) {
	k := APIKey{
		ID:         NewID(),
		Name:       name,
		SecretHash: HashKey(secret),
		Scopes:     strings.Join(scopes, " "),
		CreatedAt:  time.Now().UTC(),
	}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var old APIKey
		err := tx.Where("name = ?", name).Take(&old).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return tx.Create(&k).Error
		}
		if err != nil {
			return err
		}
		k.ID, k.CreatedAt = old.ID, old.CreatedAt
		return tx.Model(&APIKey{}).Where("id = ?", old.ID).Updates(map[string]any{
			"secret_hash": k.SecretHash,
			"scopes":      k.Scopes,
			"revoked_at":  nil,
		}).Error
	})
	if err != nil {
		return nil, fmt.Errorf("directory: store API key %q: %w", name, err)
	}
	return &k, nil
}

// VerifyAPIKey answers the live key whose secret this is. It reads the
// primary while it is up, so a revoked key is refused at once, and a
// replica only while the primary is down, so that a caller is still
// told who it is and that its change must wait (ReadPrimaryFirst).
func (s *Store) VerifyAPIKey(ctx context.Context, secret string) (*APIKey, error) {
	if secret == "" {
		return nil, ErrBadKey
	}
	var k APIKey
	err := s.ReadPrimaryFirst(ctx, func(db *gorm.DB) error {
		return db.Where("secret_hash = ? AND revoked_at IS NULL", HashKey(secret)).
			Take(&k).Error
	})
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrBadKey
	}
	if err != nil {
		return nil, fmt.Errorf("directory: verify API key: %w", err)
	}
	return &k, nil
}
