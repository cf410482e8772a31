// Package guard resists password guessing on every sign-in egret
// offers: the web mailbox login, the OpenID Connect provider's login
// page, IMAP LOGIN and AUTHENTICATE, and SMTP submission AUTH, bearer
// tokens (OAUTHBEARER, XOAUTH2) as well as passwords. It implements
// mailcore.LoginGuard; callers go through mailcore.Guarded.
//
// # Contract
//
// Failures are counted per account and per client address over a
// sliding window. From the second failure on, each attempt waits a
// delay that doubles with every failure, up to MaxDelay. At
// AccountLimit failures for one account, or AddressLimit from one
// address, the account or address is locked for LockFor: every attempt
// is answered as a wrong password, the correct one included, and
// "login locked" is logged once with the account id (or the address)
// and the end of the lock. A success clears the account's count.
//
// Counters live in memory, per process. Locks are rows of the table
// login_lockouts, so every node and `egret sso unlock` see the same
// ones, and a restart does not lift them. A lock the database cannot
// take, while its primary is down, is held in this process's memory
// until it ends instead; `egret sso unlock` does not see it. Check
// reads the locks through Config.Read: from the primary while it is up,
// so a lock holds from the failure that made it on; from a replica
// while it is down, so sign-in goes on during such an outage, honouring
// the locks the replica had received and those this process holds.
//
// A name that is no account is counted under the name itself, so an
// unknown user and a known one are treated, timed and answered alike.
// Not yet: anyone may lock an account by guessing at it; the lock is
// short, and the per-address limit stops one source from keeping many
// accounts locked. Client addresses are the TCP peer's: a proxy in
// front of egret would make all clients one.
package guard

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/egretair/egret/mailcore"
)

// Config sets the limits; zero values take the defaults in brackets.
type Config struct {
	// AccountLimit is the failures that lock an account [5].
	AccountLimit int
	// AddressLimit is the failures that lock a client address [20].
	AddressLimit int
	// Window is how long a failure counts [15m].
	Window time.Duration
	// LockFor is how long a lock lasts [15m].
	LockFor time.Duration
	// BaseDelay is the wait after the first counted failure; it
	// doubles with each further one up to MaxDelay [250ms, 4s].
	BaseDelay, MaxDelay time.Duration
	// Resolve names the account a user name belongs to, so that a
	// login and an address count together; nil or "" counts the name.
	Resolve func(ctx context.Context, user string) string
	// Now answers the time; nil means time.Now.
	Now func() time.Time
	// Read runs the lockout lookup of Check. It must read the primary
	// while it is up, so a lock just written is honoured at once, and
	// may read a replica while the primary is down, so sign-in goes on
	// (directory.Store.ReadPrimaryFirst); nil reads db.
	Read func(ctx context.Context, fn func(db *gorm.DB) error) error
}

// Guard is a mailcore.LoginGuard over the database.
type Guard struct {
	cfg Config
	db  *gorm.DB
	log *slog.Logger

	mu    sync.Mutex
	fails map[string]*counter
	// held are the locks the database did not take, by subject, with
	// their end.
	held map[string]time.Time
}

// counter is the recent failures of one subject.
type counter struct {
	n    int
	last time.Time
}

// lockRow is a row of login_lockouts.
type lockRow struct {
	Subject     string `gorm:"primaryKey"`
	AccountID   *string
	Failures    int
	LockedUntil int64
	CreatedAt   int64 `gorm:"autoCreateTime:false"`
}

func (lockRow) TableName() string { return "login_lockouts" }

// Lockout is a lock in force, as operators see it.
type Lockout struct {
	// Subject is "account:<id>", "user:<name>" or "ip:<address>".
	Subject   string    `json:"subject"`
	AccountID string    `json:"account_id,omitempty"`
	Failures  int       `json:"failures"`
	Until     time.Time `json:"until"`
}

// New answers a guard over db (egret's directory database).
func New(cfg Config, db *gorm.DB, log *slog.Logger) *Guard {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if cfg.AccountLimit <= 0 {
		cfg.AccountLimit = 5
	}
	if cfg.AddressLimit <= 0 {
		cfg.AddressLimit = 20
	}
	def(&cfg.Window, 15*time.Minute)
	def(&cfg.LockFor, 15*time.Minute)
	def(&cfg.BaseDelay, 250*time.Millisecond)
	def(&cfg.MaxDelay, 4*time.Second)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &Guard{cfg: cfg, db: db, log: log.With("service", "guard"), fails: map[string]*counter{},
		held: map[string]time.Time{}}
}

var _ mailcore.LoginGuard = (*Guard)(nil)

// subjects answers the account subject ("" without a user name), its
// account id ("" for a name that is none), and the address subject (""
// without an address).
func (g *Guard) subjects(ctx context.Context, user, remoteIP string) (acct, id, addr string) {
	name := strings.ToLower(strings.TrimSpace(user))
	if len(name) > 320 {
		name = name[:320]
	}
	// A bearer token may come without a user name: it is counted by
	// its address alone, lest every such client share one counter.
	if name != "" {
		if g.cfg.Resolve != nil {
			id = g.cfg.Resolve(ctx, name)
		}
		acct = "user:" + name
		if id != "" {
			acct = "account:" + id
		}
	}
	if ip := ClientIP(remoteIP); ip != "" {
		addr = "ip:" + ip
	}
	return acct, id, addr
}

// ClientIP answers the address a remote address counts under: the IP
// without port, and for IPv6 its /64, which one client usually holds
// whole.
func ClientIP(remote string) string {
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return ""
	}
	if ip4 := ip.To4(); ip4 != nil {
		return ip4.String()
	}
	return (&net.IPNet{IP: ip.Mask(net.CIDRMask(64, 128)), Mask: net.CIDRMask(64, 128)}).String()
}

// count answers a subject's failures in the window; g.mu is held.
func (g *Guard) count(subject string, now time.Time) int {
	c := g.fails[subject]
	if c == nil {
		return 0
	}
	if now.Sub(c.last) > g.cfg.Window {
		delete(g.fails, subject)
		return 0
	}
	return c.n
}

// Check implements mailcore.LoginGuard.
func (g *Guard) Check(ctx context.Context, user, remoteIP string) (time.Duration, error) {
	acct, _, addr := g.subjects(ctx, user, remoteIP)
	now := g.cfg.Now()

	g.mu.Lock()
	n := max(g.count(acct, now), g.count(addr, now))
	g.mu.Unlock()
	var wait time.Duration
	if n > 0 {
		wait = g.cfg.BaseDelay << min(n-1, 16)
		wait = min(wait, g.cfg.MaxDelay)
	}

	var locked int64
	read := g.cfg.Read
	if read == nil {
		read = func(ctx context.Context, fn func(db *gorm.DB) error) error {
			return fn(g.db.WithContext(ctx))
		}
	}
	err := read(ctx, func(db *gorm.DB) error {
		return db.Model(&lockRow{}).
			Where("subject IN ? AND locked_until > ?", []string{acct, addr}, now.UnixMilli()).
			Count(&locked).Error
	})
	if err != nil {
		// A database outage must not open the door wider: the
		// sign-in fails as a temporary error instead.
		return 0, err
	}
	g.mu.Lock()
	for _, s := range []string{acct, addr} {
		if until, ok := g.held[s]; ok {
			if now.Before(until) {
				locked++
			} else {
				delete(g.held, s)
			}
		}
	}
	g.mu.Unlock()
	if locked > 0 {
		return wait, mailcore.ErrLocked
	}
	return wait, nil
}

// Failed implements mailcore.LoginGuard.
func (g *Guard) Failed(ctx context.Context, user, remoteIP string) {
	acct, id, addr := g.subjects(ctx, user, remoteIP)
	now := g.cfg.Now()

	g.mu.Lock()
	bump := func(s string) int {
		if s == "" {
			return 0
		}
		n := g.count(s, now) + 1
		g.fails[s] = &counter{n: n, last: now}
		return n
	}
	na, ni := bump(acct), bump(addr)
	if len(g.fails) > 100_000 {
		for s, c := range g.fails {
			if now.Sub(c.last) > g.cfg.Window {
				delete(g.fails, s)
			}
		}
		for s, until := range g.held {
			if !now.Before(until) {
				delete(g.held, s)
			}
		}
	}
	g.mu.Unlock()

	if na >= g.cfg.AccountLimit {
		g.lock(ctx, acct, id, na, now)
	}
	if ni >= g.cfg.AddressLimit {
		g.lock(ctx, addr, "", ni, now)
	}
}

// lock records a lockout and restarts the subject's count, so the
// next lock needs a full run of failures again.
func (g *Guard) lock(ctx context.Context, subject, accountID string, n int, now time.Time) {
	until := now.Add(g.cfg.LockFor)
	row := lockRow{Subject: subject, Failures: n, LockedUntil: until.UnixMilli(), CreatedAt: now.UnixMilli()}
	if accountID != "" {
		row.AccountID = &accountID
	}
	err := g.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "subject"}},
		DoUpdates: clause.AssignmentColumns([]string{"account_id", "failures", "locked_until", "created_at"}),
	}).Create(&row).Error
	g.mu.Lock()
	if err != nil {
		g.held[subject] = until
	}
	delete(g.fails, subject)
	g.mu.Unlock()
	if err != nil {
		g.log.Warn("login lock held in memory only: not recorded in the database",
			slog.String("subject", subject), slog.Any("err", err))
	}
	attrs := []any{slog.String("subject", subject), slog.Time("until", until), slog.Int("failures", n)}
	if accountID != "" {
		attrs = append(attrs, slog.String("account", accountID))
	}
	g.log.Warn("login locked", attrs...)
}

// Succeeded implements mailcore.LoginGuard.
func (g *Guard) Succeeded(ctx context.Context, user, remoteIP string) {
	acct, _, _ := g.subjects(ctx, user, remoteIP)
	g.mu.Lock()
	delete(g.fails, acct)
	g.mu.Unlock()
}

// Lockouts answers the locks in force on db, soonest to end first.
func Lockouts(ctx context.Context, db *gorm.DB, now time.Time) ([]Lockout, error) {
	var rows []lockRow
	err := db.WithContext(ctx).Where("locked_until > ?", now.UnixMilli()).
		Order("locked_until").Find(&rows).Error
	if err != nil {
		return nil, err
	}
	out := make([]Lockout, 0, len(rows))
	for _, r := range rows {
		l := Lockout{Subject: r.Subject, Failures: r.Failures, Until: time.UnixMilli(r.LockedUntil).UTC()}
		if r.AccountID != nil {
			l.AccountID = *r.AccountID
		}
		out = append(out, l)
	}
	return out, nil
}

// Unlock lifts the locks whose subject is exactly subject, or whose
// account id or address is who, and answers how many it lifted.
func Unlock(ctx context.Context, db *gorm.DB, who string) (int64, error) {
	who = strings.TrimSpace(who)
	if ip := ClientIP(who); ip != "" {
		who = "ip:" + ip
	}
	res := db.WithContext(ctx).
		Where("subject = ? OR account_id = ? OR subject = ?", who, who, "user:"+strings.ToLower(who)).
		Delete(&lockRow{})
	return res.RowsAffected, res.Error
}
