package sso

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"

	"github.com/egretair/egret/directory"
)

// sessionRow is a row of web_sessions.
type sessionRow struct {
	IDHash    string `gorm:"primaryKey;column:id_hash"`
	AccountID string
	CreatedAt int64 `gorm:"autoCreateTime:false"`
	ExpiresAt int64
}

func (sessionRow) TableName() string { return "web_sessions" }

// Session is a signed-in browser.
type Session struct {
	// ID is the cookie's value; only its digest is stored.
	ID        string
	AccountID string
	ExpiresAt time.Time
}

// CSRF answers the session's synchronizer token: an HMAC keyed by the
// session id, which only the browser holding the cookie (and egret,
// while handling its request) knows.
func (s Session) CSRF() string {
	m := hmac.New(sha256.New, []byte(s.ID))
	m.Write([]byte("egret web form"))
	return hex.EncodeToString(m.Sum(nil))
}

// CheckCSRF reports whether token is the session's CSRF token,
// compared in constant time.
func (s Session) CheckCSRF(token string) bool {
	return s.ID != "" && hmac.Equal([]byte(token), []byte(s.CSRF()))
}

// StartSession makes a session for an account that has just signed in.
func (s *Service) StartSession(ctx context.Context, accountID string) (Session, error) {
	now := s.now()
	sess := Session{ID: newSecret(), AccountID: accountID,
		ExpiresAt: now.Add(orDefault(s.SessionTTL, DefaultSessionTTL))}
	row := sessionRow{IDHash: digest(sess.ID), AccountID: accountID,
		CreatedAt: ms(now), ExpiresAt: ms(sess.ExpiresAt)}
	db := s.db(ctx)
	if err := db.Create(&row).Error; err != nil {
		return Session{}, wrapDB("account "+accountID+": start session", err)
	}
	db.Where("expires_at < ?", ms(now)).Delete(&sessionRow{})
	return sess, nil
}

// Session answers the live session with this id, for an account that
// is still enabled: disabling an account ends its web access at once.
func (s *Service) Session(ctx context.Context, id string) (Session, error) {
	if !plausibleSecret(id) {
		return Session{}, ErrNoSession
	}
	var row sessionRow
	err := s.db(ctx).Where("id_hash = ? AND expires_at > ?", digest(id), ms(s.now())).
		Limit(1).Find(&row).Error
	if err != nil {
		return Session{}, wrapDB("session", err)
	}
	if row.AccountID == "" {
		return Session{}, ErrNoSession
	}
	if _, err := s.Account(ctx, row.AccountID); err != nil {
		if errors.Is(err, directory.ErrNotFound) {
			return Session{}, ErrNoSession
		}
		return Session{}, err
	}
	return Session{ID: id, AccountID: row.AccountID,
		ExpiresAt: time.UnixMilli(row.ExpiresAt)}, nil
}

// EndSession forgets a session; an unknown id is no error.
func (s *Service) EndSession(ctx context.Context, id string) error {
	if err := s.db(ctx).Where("id_hash = ?", digest(id)).Delete(&sessionRow{}).Error; err != nil {
		return wrapDB("end session", err)
	}
	return nil
}
