package sso

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/egretair/egret/directory"
)

// Limits on a preauth link's times, checked against egret's clock.
const (
	// PreauthSkew is how far ts may be from egret's clock either way.
	PreauthSkew = 5 * time.Minute
	// PreauthMaxLife bounds exp - ts, and so how long its MAC must be
	// remembered.
	PreauthMaxLife = 10 * time.Minute
)

// preauthVersion starts the canonical string; a new format gets a new
// first line, so no MAC of one form verifies as another.
const preauthVersion = "egret-preauth-v1"

// usedLinkRow is a row of sso_used_links: a preauth MAC already spent.
type usedLinkRow struct {
	MacHash   string `gorm:"primaryKey"`
	AccountID string
	ExpiresAt int64
}

func (usedLinkRow) TableName() string { return "sso_used_links" }

// PreauthCanonical answers the string a preauth MAC is computed over,
// as the package comment describes.
func PreauthCanonical(address string, ts, exp int64) string {
	return preauthVersion + "\n" + address + "\n" +
		strconv.FormatInt(ts, 10) + "\n" + strconv.FormatInt(exp, 10)
}

// PreauthMAC answers the hex MAC of a link under key, as the OA
// computes it.
func PreauthMAC(key, address string, ts, exp int64) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(PreauthCanonical(address, ts, exp)))
	return hex.EncodeToString(m.Sum(nil))
}

// RedeemPreauth checks a preauth link's values (as strings from the
// query) and uses it up. Any refusal is ErrInvalidLink, logged with
// its cause; other errors are temporary.
func (s *Service) RedeemPreauth(ctx context.Context, address, tsText, expText, mac string) (Grant, error) {
	refuse := func(cause string) (Grant, error) {
		s.log().Info("preauth link refused", slog.String("address", address),
			slog.String("cause", cause))
		return Grant{}, ErrInvalidLink
	}
	ts, err1 := strconv.ParseInt(tsText, 10, 64)
	exp, err2 := strconv.ParseInt(expText, 10, 64)
	got, err3 := hex.DecodeString(mac)
	if err1 != nil || err2 != nil || err3 != nil || len(got) != sha256.Size ||
		address != strings.ToLower(address) || len(address) > 320 {
		return refuse("malformed")
	}
	now := s.now()
	made, ends := time.Unix(ts, 0), time.Unix(exp, 0)
	switch {
	case made.Sub(now).Abs() > PreauthSkew:
		return refuse("timestamp too far from the clock")
	case !ends.After(now):
		return refuse("expired")
	case !ends.After(made) || ends.Sub(made) > PreauthMaxLife:
		return refuse("lifetime out of range")
	}
	_, domain, ok := strings.Cut(address, "@")
	if !ok {
		return refuse("malformed")
	}
	keys, err := s.liveKeys(ctx, domain)
	if err != nil {
		return Grant{}, err
	}

	// Every live key is tried, each compared in constant time.
	matched := false
	for _, k := range keys {
		want, _ := hex.DecodeString(PreauthMAC(k, address, ts, exp))
		if hmac.Equal(want, got) {
			matched = true
		}
	}
	if !matched {
		return refuse("bad MAC")
	}
	acct, err := s.enabledAccount(ctx, address)
	if errors.Is(err, directory.ErrNotFound) || (err == nil && acct.Address != address) {
		return refuse("no enabled account has this address")
	}
	if err != nil {
		return Grant{}, err
	}

	// The primary key lets one insert of a MAC succeed, in any number
	// of processes; the MAC is kept until the link could not verify.
	db := s.db(ctx)
	db.Where("expires_at < ?", ms(now)).Delete(&usedLinkRow{})
	row := usedLinkRow{MacHash: digest(strings.ToLower(mac)), AccountID: acct.ID,
		ExpiresAt: ms(ends.Add(PreauthSkew))}
	if err := db.Create(&row).Error; err != nil {
		var n int64
		if db.Model(&usedLinkRow{}).Where("mac_hash = ?", row.MacHash).Count(&n).Error == nil && n > 0 {
			return refuse("used before")
		}
		return Grant{}, wrapDB("account "+acct.ID+": record preauth link", err)
	}
	return Grant{AccountID: acct.ID, ReturnPath: MailRoot}, nil
}
