package directory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"
)

// The scopes an API key may carry, besides ScopeAll.
const (
	ScopeDirectoryRead  = "directory:read"
	ScopeDirectoryWrite = "directory:write"
	ScopeOASync         = "oa:sync"
	ScopeOAApprove      = "oa:approve"
	ScopeAuditRead      = "audit:read"
	// ScopeSSOIssue lets the OA hand out one-time login links.
	ScopeSSOIssue = "sso:issue"
	// ScopeMailboxRead reads mailbox counts and the latest senders
	// and subjects: mail content, so apart from directory:read.
	ScopeMailboxRead = "mailbox:read"
	// ScopeOIDCAdmin registers and removes OpenID Connect clients.
	ScopeOIDCAdmin = "oidc:admin"
)

// Scopes lists every scope a key may be given.
var Scopes = []string{
	ScopeDirectoryRead, ScopeDirectoryWrite, ScopeOASync, ScopeOAApprove, ScopeAuditRead,
	ScopeSSOIssue, ScopeMailboxRead, ScopeOIDCAdmin, ScopeAll,
}

// EntityAPIKey names API keys in the change log.
const EntityAPIKey = "apikey"

// CheckScopes refuses an empty list and any scope egret does not know.
func CheckScopes(scopes []string) error {
	if len(scopes) == 0 {
		return errors.New("directory: an API key needs at least one scope")
	}
	for _, s := range scopes {
		if !slices.Contains(Scopes, s) {
			return fmt.Errorf("directory: unknown scope %q (known: %v)", s, Scopes)
		}
	}
	return nil
}

// keyRecord is an API key as the change log carries it: never its
// secret or digest.
type keyRecord struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Scopes    string     `json:"scopes"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// IssueAPIKey makes a key as CreateAPIKey does, after checking its name
// and scopes, and records it in the change log. A name that a live key
// holds is refused; a revoked key's name is given a new secret.
func (s *Store) IssueAPIKey(ctx context.Context, name string, scopes []string) (*APIKey, string, error) {
	if err := checkText("name", name, 128, true); err != nil {
		return nil, "", err
	}
	if err := CheckScopes(scopes); err != nil {
		return nil, "", err
	}
	var old APIKey
	err := s.db.WithContext(ctx).Where("name = ? AND revoked_at IS NULL", name).Take(&old).Error
	if err == nil {
		return nil, "", &ConflictError{Field: "name", Message: fmt.Sprintf("a live API key is named %q; revoke it first", name)}
	}
	if !errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, "", fmt.Errorf("directory: API key %q: %w", name, err)
	}
	k, secret, err := s.CreateAPIKey(ctx, name, scopes)
	if err != nil {
		return nil, "", err
	}
	err = LogChange(s.db.WithContext(ctx), EntityAPIKey, k.ID, OpCreate, keyRecord{ID: k.ID, Name: k.Name, Scopes: k.Scopes})
	return k, secret, err
}

// ListAPIKeys answers every key, live and revoked, by name.
func (s *Store) ListAPIKeys(ctx context.Context) ([]APIKey, error) {
	var keys []APIKey
	if err := s.db.WithContext(ctx).Order("name").Find(&keys).Error; err != nil {
		return nil, fmt.Errorf("directory: list API keys: %w", err)
	}
	return keys, nil
}

// RevokeAPIKey revokes the live key with this name or id.
func (s *Store) RevokeAPIKey(ctx context.Context, nameOrID string) (*APIKey, error) {
	var k APIKey
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		err := tx.Where("(name = ? OR id = ?) AND revoked_at IS NULL", nameOrID, nameOrID).Take(&k).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return fmt.Errorf("%w: live API key %q", ErrNotFound, nameOrID)
		}
		if err != nil {
			return err
		}
		before := keyRecord{ID: k.ID, Name: k.Name, Scopes: k.Scopes}
		now := time.Now().UTC()
		if err := tx.Model(&APIKey{}).Where("id = ?", k.ID).Update("revoked_at", now).Error; err != nil {
			return err
		}
		k.RevokedAt = &now
		data, _ := jsonString(keyRecord{ID: k.ID, Name: k.Name, Scopes: k.Scopes, RevokedAt: &now})
		b, _ := jsonString(before)
		return tx.Create(&Change{At: now, Entity: EntityAPIKey, EntityID: k.ID, Op: OpDisable,
			Data: data, Before: &b, Actor: ActorFrom(tx.Statement.Context)}).Error
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, err
		}
		return nil, fmt.Errorf("directory: revoke API key %q: %w", nameOrID, err)
	}
	return &k, nil
}

func jsonString(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}
