package directory

// A store on MySQL/MariaDB may have replicas besides its primary: servers
// that follow the primary by MariaDB replication and are never written
// to. The store keeps one database value per server and a checker that
// pings each one every second (replica_check.go) over a connection of
// its own, so that a pool busy with slow statements is not taken for a
// server that is gone; on a replica it also reads SHOW SLAVE STATUS,
// and a replica whose threads have stopped or that trails the primary
// by more than the allowed lag is marked behind.
//
// Writes, and every read that must see the store's own last write, go to
// the primary. Read (below) is for the lookups that may trail by a
// second: the account behind a mail address, and lists. It picks a
// replica that is up and not behind; else the primary while it is up;
// else a replica that answers at all, behind or not, since a stale
// answer beats none while the primary is away (a replica's IO thread
// stops exactly when its primary dies). A read that fails for want of
// a connection is tried once on the other choice. ReadPrimaryFirst is
// for the reads that decide access: the primary while it is up, a
// replica only while it is down.
//
// While the checker finds the primary down, statements on it fail at
// once with ErrUnavailable instead of waiting for a connect timeout;
// they reach it again at the first check that finds it back.
//
// gorm.io/plugin/dbresolver splits reads from writes too, but not in
// the way the store needs, which is why this file does it: dbresolver
// picks among replicas by a fixed policy and knows nothing of their
// health, so it neither turns to a replica that is behind only while
// the primary is down, nor refuses writes at once while the primary is
// known down instead of waiting on each connect, nor sends the reads
// that decide access to the primary first.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	gmysql "gorm.io/driver/mysql"
	"gorm.io/gorm"

	"github.com/egretair/egret/migrations"
)

// ErrUnavailable is answered, wrapped, when the primary database does
// not answer: the change was not made and may be tried again later.
var ErrUnavailable = errors.New("directory: database unavailable")

// DefaultMaxReplicaLag is how far a replica may trail the primary and
// still serve reads, when WithMaxReplicaLag does not say.
const DefaultMaxReplicaLag = 30 * time.Second

// checkEvery is how often each database is checked.
const checkEvery = time.Second

// downAfter is how many checks in a row must fail, none of them for a
// lost connection, before a database is marked down: a ping that runs
// out of time may be a server briefly too busy to answer. A lost
// connection (refused, reset) marks it down at the first check.
const downAfter = 3

// Option configures Open and Connect.
type Option func(*options)

type options struct {
	replicas []string
	maxLag   time.Duration
}

// WithReplicas names replica databases by URL
// ("mysql://USER:PASS@tcp(HOST:PORT)/DB"); empty strings are ignored.
// Replicas need a MySQL/MariaDB primary.
func WithReplicas(urls ...string) Option {
	return func(o *options) {
		for _, u := range urls {
			if u != "" {
				o.replicas = append(o.replicas, u)
			}
		}
	}
}

// WithMaxReplicaLag sets how far a replica may trail the primary and
// still serve reads first; zero keeps DefaultMaxReplicaLag.
func WithMaxReplicaLag(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.maxLag = d
		}
	}
}

// Database roles in DatabaseHealth.
const (
	RolePrimary = "primary"
	RoleReplica = "replica"
)

// DatabaseHealth is one database as the last check found it.
type DatabaseHealth struct {
	// Name is "primary", or "replica1", "replica2", ... in the order
	// configured.
	Name string `json:"name"`
	Role string `json:"role"`
	// Addr is the server's address from its URL.
	Addr string `json:"addr"`
	Up   bool   `json:"up"`
	// Behind is true for a replica that trails by more than the
	// allowed lag or whose replication threads are not running.
	Behind bool `json:"behind,omitempty"`
	// LagSeconds is the replica's Seconds_Behind_Master, -1 when the
	// server does not know it.
	LagSeconds float64 `json:"lag_seconds"`
	// Reads counts the lag-tolerant reads this database answered.
	Reads uint64 `json:"reads"`
	// ServesReads marks the database Read asks first now; ServesWrites
	// marks the primary while it is up.
	ServesReads  bool   `json:"serves_reads"`
	ServesWrites bool   `json:"serves_writes"`
	Error        string `json:"error,omitempty"`
}

// database is one server of the store and its last known health.
type database struct {
	name string
	role string
	addr string
	db   *gorm.DB
	sql  *sql.DB
	// probe is the checker's own pool of one connection to the same
	// server, so that its ping never waits for a connection of sql.
	probe *sql.DB

	up     atomic.Bool
	behind atomic.Bool
	lagMS  atomic.Int64
	reads  atomic.Uint64
	// fails counts the checks in a row that failed.
	fails atomic.Int32
	// seenWell is when a check last found the database up and, for a
	// replica, in step (Unix nanoseconds; 0 never).
	seenWell atomic.Int64
	// applying is whether a replica's SQL thread ran at the last
	// check: it applies what it has received.
	applying atomic.Bool

	mu      sync.Mutex
	lastErr string
}

// setErr records the outcome of a check.
func (d *database) setErr(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lastErr = ""
	if err != nil {
		d.lastErr = err.Error()
	}
}

// usable reports whether a replica may serve reads first.
func (d *database) usable() bool { return d.up.Load() && !d.behind.Load() }

// newDatabase makes the pools of one MySQL/MariaDB server, the one its
// statements share and the checker's, both with the timeouts dsn sets;
// nothing is dialled yet.
func newDatabase(dsn, name, role string) (*database, error) {
	sqlDB, err := sql.Open("mysql", dsn)
	if err != nil {
		return nil, err
	}
	sqlDB.SetMaxOpenConns(32)
	sqlDB.SetMaxIdleConns(8)
	sqlDB.SetConnMaxLifetime(5 * time.Minute)
	probe, err := sql.Open("mysql", dsn)
	if err != nil {
		sqlDB.Close()
		return nil, err
	}
	probe.SetMaxOpenConns(1)
	probe.SetMaxIdleConns(1)
	probe.SetConnMaxLifetime(5 * time.Minute)
	d := &database{name: name, role: role, addr: dsnAddr(dsn), sql: sqlDB, probe: probe}
	d.up.Store(true)
	d.lagMS.Store(-1)
	return d, nil
}

// close closes both pools of d.
func (d *database) close() error {
	d.probe.Close()
	return d.sql.Close()
}

// openGorm gives d its gorm handle; the primary's pool is gated.
func (d *database) openGorm(cfg *gorm.Config) error {
	var pool gorm.ConnPool = d.sql
	if d.role == RolePrimary {
		pool = gatedPool{db: d.sql, d: d}
	} else {
		// A replica that is down at start must not stop the node:
		// it is not pinged here, nor its version asked for, as
		// nothing but reads run on it; the checker finds it down.
		c := *cfg
		c.DisableAutomaticPing = true
		cfg = &c
	}
	db, err := gorm.Open(gmysql.New(gmysql.Config{Conn: pool,
		SkipInitializeWithVersion: d.role == RoleReplica}), cfg)
	if err == nil && d.role == RolePrimary {
		err = markLostConns(db)
	}
	d.db = db
	return err
}

// replicaDatabases makes the pools of the replicas o names.
func (o *options) replicaDatabases() ([]*database, error) {
	var out []*database
	for i, u := range o.replicas {
		dialect, dsn, err := ParseURL(u)
		if err == nil && dialect != migrations.MySQL {
			err = fmt.Errorf("directory: replica %s: replicas need MySQL/MariaDB", redact(u))
		}
		var d *database
		if err == nil {
			d, err = newDatabase(dsn, "replica"+strconv.Itoa(i+1), RoleReplica)
		}
		if err != nil {
			for _, d := range out {
				d.close()
			}
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// Probe checks once the databases that rawURL and the options name,
// without gorm and without migrations, for `egret status`, which must
// answer while the primary is down.
func Probe(rawURL string, opts ...Option) ([]DatabaseHealth, error) {
	o := newOptions(opts)
	dialect, dsn, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	if dialect != migrations.MySQL {
		return (&Store{}).Health(), nil
	}
	// One look is all egret status has: a check that fails marks the
	// database down at once.
	s := &Store{maxLag: o.maxLag, downAfter: 1}
	if s.primary, err = newDatabase(dsn, "primary", RolePrimary); err != nil {
		return nil, err
	}
	if s.replicas, err = o.replicaDatabases(); err != nil {
		s.primary.close()
		return nil, err
	}
	defer func() {
		for _, d := range s.all() {
			d.close()
		}
	}()
	return s.CheckHealth(), nil
}

func newOptions(opts []Option) options {
	o := options{maxLag: DefaultMaxReplicaLag}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// dsnAddr answers the host:port of a go-sql-driver DSN.
func dsnAddr(dsn string) string {
	c, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "?"
	}
	return c.Addr
}

// all answers the primary and then the replicas.
func (s *Store) all() []*database {
	return append([]*database{s.primary}, s.replicas...)
}

// readers answers the database a lag-tolerant read asks first and the
// one it falls back to (nil when there is none).
func (s *Store) readers() (first, second *database) {
	if len(s.replicas) == 0 {
		return s.primary, nil
	}
	var live *database
	for _, r := range s.replicas {
		if r.usable() {
			return r, s.primary
		}
		if live == nil && r.up.Load() {
			live = r
		}
	}
	if live == nil {
		live = s.replicas[0]
	}
	if s.primary.up.Load() {
		return s.primary, live
	}
	return live, s.primary
}

// Read runs fn, a read that may trail the primary by the allowed lag,
// on the database the store's health picks (see the file comment), and
// once more on the other one when the first was unreachable. A record
// a replica does not have is looked for on the primary too, while it is
// up: an account made a moment ago may not have reached the replica.
// A read that ran out of ctx's time, or whose ctx was cancelled, is not
// tried again: it would fail the same way, and it tells nothing of the
// database. fn must not write, and must leave what it learnt in its own
// variables: it may run twice.
func (s *Store) Read(ctx context.Context, fn func(db *gorm.DB) error) error {
	if s.primary == nil {
		return fn(s.db.WithContext(ctx))
	}
	first, second := s.readers()
	err := readOn(ctx, first, fn)
	switch {
	case err == nil || second == nil || ctx.Err() != nil:
		return err
	case connLost(ctx, err):
		if err2 := readOn(ctx, second, fn); err2 == nil || !connLost(ctx, err2) {
			return err2
		}
		return err
	case notFound(err) && first.role == RoleReplica && s.primary.up.Load():
		return readOn(ctx, s.primary, fn)
	}
	return err
}

// notFound reports whether err says a record does not exist.
func notFound(err error) bool {
	return errors.Is(err, gorm.ErrRecordNotFound) || errors.Is(err, ErrNotFound)
}

// ReadPrimaryFirst is Read for reads that must see the latest write
// while they can: those that decide access (a sign-in, its lockout, an
// API key, a signing key, where an account's mail lives) and a web
// session just made. It reads the primary while it is up, and a
// replica, with the lag that implies, only while the primary is down or
// when the primary is found gone during this very read; and only a
// replica that was in step when the primary was last seen well. One
// whose replication had stopped before (its SQL thread halted, or
// trailing past the allowed lag) could hold a password or a key
// revoked long ago, so access is refused as unavailable instead.
func (s *Store) ReadPrimaryFirst(ctx context.Context, fn func(db *gorm.DB) error) error {
	if s.primary == nil || len(s.replicas) == 0 || s.primary.up.Load() {
		err := fn(s.db.WithContext(ctx))
		if err == nil || len(s.replicas) == 0 || !connLost(ctx, err) {
			return err
		}
	}
	r := s.inStepReplica()
	if r == nil {
		return fmt.Errorf("%w: the primary is down and no replica was in step with it", ErrUnavailable)
	}
	return readOn(ctx, r, fn)
}

// inStepReplica answers a replica that is up and was seen in step no
// more than two checks before the primary was last seen well, or nil.
// A node that has never seen the primary well (started during the
// outage) cannot tell; it takes a replica that still applies what it
// received, whose only fault is the primary it cannot reach.
func (s *Store) inStepReplica() *database {
	last := s.primary.seenWell.Load()
	since := last - int64(2*checkEvery)
	for _, r := range s.replicas {
		if !r.up.Load() {
			continue
		}
		if last == 0 && r.applying.Load() {
			return r
		}
		if seen := r.seenWell.Load(); seen > 0 && seen >= since {
			return r
		}
	}
	return nil
}

// readOn runs fn on d and counts the read when it was answered. A
// database found gone is marked down at once, as the gated pool marks
// the primary, rather than left up until the next check.
func readOn(ctx context.Context, d *database, fn func(db *gorm.DB) error) error {
	err := fn(d.db.WithContext(ctx))
	lost := connLost(ctx, err)
	if !lost {
		d.reads.Add(1)
	} else {
		d.up.Store(false)
	}
	if lost && !errors.Is(err, ErrUnavailable) {
		err = fmt.Errorf("%w: %s: %w", ErrUnavailable, d.addr, err)
	}
	return err
}

// Health answers every database of the store as last checked, the
// primary first. A SQLite store answers one entry that is always up.
func (s *Store) Health() []DatabaseHealth {
	if s.primary == nil {
		return []DatabaseHealth{{Name: "primary", Role: RolePrimary, Addr: "sqlite",
			Up: true, LagSeconds: -1, ServesReads: true, ServesWrites: true}}
	}
	first, _ := s.readers()
	var out []DatabaseHealth
	for _, d := range s.all() {
		d.mu.Lock()
		e := d.lastErr
		d.mu.Unlock()
		lag := float64(-1)
		if ms := d.lagMS.Load(); ms >= 0 {
			lag = float64(ms) / 1000
		}
		out = append(out, DatabaseHealth{Name: d.name, Role: d.role, Addr: d.addr,
			Up: d.up.Load(), Behind: d.behind.Load(), LagSeconds: lag,
			Reads: d.reads.Load(), ServesReads: d == first && d.up.Load(),
			ServesWrites: d == s.primary && d.up.Load(), Error: e})
	}
	return out
}

// CheckHealth checks every database now, for tools that open a store
// only to report on it (egret status).
func (s *Store) CheckHealth() []DatabaseHealth {
	if s.primary != nil {
		s.checkAll()
	}
	return s.Health()
}
