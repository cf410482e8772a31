package oidcp

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"gorm.io/gorm"
)

// DefaultKeyGrace is how long a retired key stays in the JWKS: longer
// than any token it signed lives.
const DefaultKeyGrace = 48 * time.Hour

// keyBits is the size of the RSA keys made; RS256 is the one algorithm
// every relying party must accept (OpenID Connect Core §15.1).
const keyBits = 2048

// KeyRecord is one signing key in the database.
type KeyRecord struct {
	ID         string `gorm:"primaryKey"`
	Algorithm  string
	PrivatePEM string `gorm:"column:private_pem"`
	CreatedAt  time.Time
	RetiredAt  *time.Time
}

// TableName names the table of migration 00008.
func (KeyRecord) TableName() string { return "oidc_keys" }

// Keys is the table of signing keys.
type Keys struct {
	DB *gorm.DB
	// Grace is how long a retired key still verifies; zero means
	// DefaultKeyGrace.
	Grace time.Duration
	// Read runs Published's query. It must read the primary while it
	// is up, so a token signed with a key rotated in a moment ago
	// verifies at once, and may read a replica while the primary is
	// down, so tokens still verify then
	// (directory.Store.ReadPrimaryFirst); nil reads DB.
	Read func(ctx context.Context, fn func(db *gorm.DB) error) error
}

func (k Keys) grace() time.Duration {
	if k.Grace > 0 {
		return k.Grace
	}
	return DefaultKeyGrace
}

// Key is a parsed signing key.
type Key struct {
	ID        string
	Private   *rsa.PrivateKey
	CreatedAt time.Time
	RetiredAt *time.Time
}

// JWK answers the public half as a JSON Web Key.
func (k Key) JWK() jose.JSONWebKey {
	return jose.JSONWebKey{Key: &k.Private.PublicKey, KeyID: k.ID,
		Algorithm: string(jose.RS256), Use: "sig"}
}

// Active answers the key that signs now, making the first one when the
// table is empty.
func (k Keys) Active(ctx context.Context) (Key, error) {
	var rec KeyRecord
	err := k.DB.WithContext(ctx).Where("retired_at IS NULL").
		Order("created_at DESC").Take(&rec).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return k.Rotate(ctx)
	}
	if err != nil {
		return Key{}, fmt.Errorf("oidcp: signing key: %w", err)
	}
	return parseKey(rec)
}

// Published answers the keys a verifier may meet: the active one and
// those retired less than the grace period ago, newest first.
func (k Keys) Published(ctx context.Context) ([]Key, error) {
	cutoff := time.Now().UTC().Add(-k.grace())
	var recs []KeyRecord
	query := func(db *gorm.DB) error {
		return db.Where("retired_at IS NULL OR retired_at > ?", cutoff).
			Order("created_at DESC").Find(&recs).Error
	}
	var err error
	if k.Read != nil {
		err = k.Read(ctx, query)
	} else {
		err = query(k.DB.WithContext(ctx))
	}
	if err != nil {
		return nil, fmt.Errorf("oidcp: published keys: %w", err)
	}
	out := make([]Key, 0, len(recs))
	for _, r := range recs {
		key, err := parseKey(r)
		if err != nil {
			return nil, err
		}
		out = append(out, key)
	}
	return out, nil
}

// Rotate makes a new key the active one and retires the others, in one
// transaction. Tokens signed with a retired key verify until the grace
// period after its retirement ends.
func (k Keys) Rotate(ctx context.Context) (Key, error) {
	priv, err := rsa.GenerateKey(rand.Reader, keyBits)
	if err != nil {
		return Key{}, fmt.Errorf("oidcp: make key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return Key{}, fmt.Errorf("oidcp: encode key: %w", err)
	}
	now := time.Now().UTC()
	rec := KeyRecord{ID: now.Format("20060102T150405") + "-" + randomString(6),
		Algorithm: string(jose.RS256), CreatedAt: now,
		PrivatePEM: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))}
	err = k.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Model(&KeyRecord{}).Where("retired_at IS NULL").
			Update("retired_at", now).Error; err != nil {
			return err
		}
		return tx.Create(&rec).Error
	})
	if err != nil {
		return Key{}, fmt.Errorf("oidcp: rotate key: %w", err)
	}
	return Key{ID: rec.ID, Private: priv, CreatedAt: now}, nil
}

func parseKey(rec KeyRecord) (Key, error) {
	block, _ := pem.Decode([]byte(rec.PrivatePEM))
	if block == nil {
		return Key{}, fmt.Errorf("oidcp: key %s: no PEM block", rec.ID)
	}
	p, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return Key{}, fmt.Errorf("oidcp: key %s: %w", rec.ID, err)
	}
	priv, ok := p.(*rsa.PrivateKey)
	if !ok {
		return Key{}, fmt.Errorf("oidcp: key %s: not an RSA key", rec.ID)
	}
	return Key{ID: rec.ID, Private: priv, CreatedAt: rec.CreatedAt, RetiredAt: rec.RetiredAt}, nil
}

// signingKey is a Key as op signs with it.
type signingKey struct{ k Key }

func (s signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (s signingKey) Key() any                                    { return s.k.Private }
func (s signingKey) ID() string                                  { return s.k.ID }

// publicKey is a Key as op publishes it in the JWKS.
type publicKey struct{ k Key }

func (p publicKey) ID() string                         { return p.k.ID }
func (p publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (p publicKey) Use() string                        { return "sig" }
func (p publicKey) Key() any                           { return &p.k.Private.PublicKey }
