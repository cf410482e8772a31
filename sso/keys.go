package sso

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"gorm.io/gorm"
)

// keyRow is a row of sso_keys: one preauth key of a mail domain. The
// live key has no retired_at; a retired one verifies until retired_at
// plus the grace period.
type keyRow struct {
	Domain    string `gorm:"primaryKey"`
	KeyID     string `gorm:"primaryKey"`
	Secret    string
	CreatedAt int64 `gorm:"autoCreateTime:false"`
	RetiredAt *int64
}

func (keyRow) TableName() string { return "sso_keys" }

// Key is a domain's preauth key as `egret sso key` shows it.
type Key struct {
	Domain string
	ID     string
	Secret string
	// Created is true when this call made the key.
	Created bool
}

// checkDomain refuses what cannot be a mail domain.
func checkDomain(d string) (string, error) {
	d = strings.ToLower(strings.TrimSpace(d))
	if d == "" || len(d) > 253 || strings.ContainsAny(d, "@/ \t") {
		return "", fmt.Errorf("sso: %q is not a mail domain", d)
	}
	return d, nil
}

// PreauthKey answers the live preauth key of domain, making one when
// the domain has none. With rotate, a new key replaces the live one,
// which keeps verifying for KeyGrace.
func (s *Service) PreauthKey(ctx context.Context, domain string, rotate bool) (Key, error) {
	domain, err := checkDomain(domain)
	if err != nil {
		return Key{}, err
	}
	var out Key
	err = s.db(ctx).Transaction(func(tx *gorm.DB) error {
		var live keyRow
		err := tx.Where("domain = ? AND retired_at IS NULL", domain).Take(&live).Error
		switch {
		case err == nil && !rotate:
			out = Key{Domain: domain, ID: live.KeyID, Secret: live.Secret}
			return nil
		case err == nil:
			now := ms(s.now())
			if err := tx.Model(&keyRow{}).
				Where("domain = ? AND key_id = ?", domain, live.KeyID).
				Update("retired_at", now).Error; err != nil {
				return err
			}
		case !errors.Is(err, gorm.ErrRecordNotFound):
			return err
		}
		b := make([]byte, 32)
		rand.Read(b)
		id := make([]byte, 4)
		rand.Read(id)
		row := keyRow{Domain: domain, KeyID: hex.EncodeToString(id),
			Secret: hex.EncodeToString(b), CreatedAt: ms(s.now())}
		if err := tx.Create(&row).Error; err != nil {
			return err
		}
		out = Key{Domain: domain, ID: row.KeyID, Secret: row.Secret, Created: true}
		return nil
	})
	if err != nil {
		return Key{}, wrapDB("preauth key of "+domain, err)
	}
	return out, nil
}

// liveKeys answers the secrets that verify links of domain now: the
// live key and those retired less than KeyGrace ago.
func (s *Service) liveKeys(ctx context.Context, domain string) ([]string, error) {
	since := ms(s.now().Add(-orDefault(s.KeyGrace, DefaultKeyGrace)))
	var rows []keyRow
	err := s.db(ctx).Where("domain = ? AND (retired_at IS NULL OR retired_at > ?)", domain, since).
		Find(&rows).Error
	if err != nil {
		return nil, wrapDB("preauth keys of "+domain, err)
	}
	keys := make([]string, len(rows))
	for i, r := range rows {
		keys[i] = r.Secret
	}
	return keys, nil
}
