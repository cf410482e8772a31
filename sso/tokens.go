package sso

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/egretair/egret/directory"
)

// Token is a freshly issued login token. Secret is shown once and is
// never stored.
type Token struct {
	Secret    string
	AccountID string
	ExpiresAt time.Time
}

// tokenRow is a row of sso_tokens.
type tokenRow struct {
	TokenHash  string `gorm:"primaryKey"`
	AccountID  string
	ReturnPath string
	CreatedAt  int64 `gorm:"autoCreateTime:false"`
	ExpiresAt  int64
	UsedAt     *int64
}

func (tokenRow) TableName() string { return "sso_tokens" }

// IssueToken makes a one-time login token for the enabled account that
// who names (id, address or login). returnPath is checked with
// CleanReturnPath. An unknown or disabled account is directory.ErrNotFound.
func (s *Service) IssueToken(ctx context.Context, who, returnPath string) (Token, error) {
	ret, err := CleanReturnPath(returnPath)
	if err != nil {
		return Token{}, err
	}
	acct, err := s.enabledAccount(ctx, who)
	if err != nil {
		return Token{}, err
	}
	now := s.now()
	t := Token{Secret: newSecret(), AccountID: acct.ID,
		ExpiresAt: now.Add(orDefault(s.TokenTTL, DefaultTokenTTL))}
	row := tokenRow{TokenHash: digest(t.Secret), AccountID: acct.ID, ReturnPath: ret,
		CreatedAt: ms(now), ExpiresAt: ms(t.ExpiresAt)}
	db := s.db(ctx)
	if err := db.Create(&row).Error; err != nil {
		return Token{}, wrapDB("account "+acct.ID+": issue token", err)
	}
	// Spent and expired tokens are no use to anyone; an hour's margin
	// keeps them for whoever investigates a complaint about a link.
	db.Where("expires_at < ?", ms(now.Add(-time.Hour))).Delete(&tokenRow{})
	return t, nil
}

// RedeemToken uses a login token up and answers its grant. Any refusal
// is ErrInvalidLink; other errors are temporary.
func (s *Service) RedeemToken(ctx context.Context, secret string) (Grant, error) {
	if !plausibleSecret(secret) {
		return Grant{}, ErrInvalidLink
	}
	h := digest(secret)
	now := ms(s.now())
	db := s.db(ctx)

	// One statement decides who wins: of two processes redeeming the
	// same token at once, the database lets one UPDATE match.
	res := db.Model(&tokenRow{}).
		Where("token_hash = ? AND used_at IS NULL AND expires_at > ?", h, now).
		Update("used_at", now)
	if res.Error != nil {
		return Grant{}, wrapDB("redeem token", res.Error)
	}
	if res.RowsAffected != 1 {
		return Grant{}, ErrInvalidLink
	}
	var row tokenRow
	if err := db.Where("token_hash = ?", h).Take(&row).Error; err != nil {
		return Grant{}, wrapDB("redeem token", err)
	}
	if _, err := s.Account(ctx, row.AccountID); err != nil {
		if errors.Is(err, directory.ErrNotFound) {
			s.log().Info("login token refused", slog.String("account", row.AccountID),
				slog.String("cause", "account not enabled"))
			return Grant{}, ErrInvalidLink
		}
		return Grant{}, err
	}
	return Grant{AccountID: row.AccountID, ReturnPath: row.ReturnPath}, nil
}
