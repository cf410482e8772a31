package directory

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/go-sql-driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/egretair/egret/migrations"
)

// Store is the directory's database: one server, or on MySQL/MariaDB a
// primary with replicas (see replica.go).
type Store struct {
	db      *gorm.DB
	dialect migrations.Dialect

	// primary and replicas are set on MySQL/MariaDB only.
	primary  *database
	replicas []*database
	maxLag   time.Duration
	// downAfter is how many failed checks in a row mark a database
	// down (see the constant of that name).
	downAfter int32
	// migrateDSN is the primary's DSN without read and write
	// timeouts, for Migrate.
	migrateDSN string
	stop       chan struct{}
	stopOnce   sync.Once

	// homeBacks are the backs new accounts are homed on (home.go).
	homeBacks []string
}

// ErrNotFound is answered when a record does not exist.
var ErrNotFound = errors.New("directory: not found")

// Open connects to the database that rawURL names and applies any
// migrations it lacks. rawURL is "sqlite:PATH" or
// "mysql://USER:PASS@tcp(HOST:PORT)/DB". The folder of a SQLite file is
// made if missing. WithReplicas adds MySQL/MariaDB replicas.
func Open(ctx context.Context, rawURL string, opts ...Option) (*Store, error) {
	s, err := Connect(rawURL, opts...)
	if err != nil {
		return nil, err
	}
	if _, err := s.Migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Connect is Open without the migrations, for `egret migrate status` and
// for tools that must not change the schema.
func Connect(rawURL string, opts ...Option) (*Store, error) {
	o := newOptions(opts)
	dialect, dsn, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	if dialect == migrations.MySQL {
		return connectMySQL(dsn, o)
	}
	if len(o.replicas) > 0 {
		return nil, errors.New("directory: replicas need a MySQL/MariaDB primary")
	}

	if dir := filepath.Dir(dsn); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("directory: database folder: %w", err)
		}
	}
	// WAL lets readers go on while a writer works; foreign keys are
	// off in SQLite unless asked for; busy_timeout makes a second
	// writer wait instead of failing at once.
	q := "?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)" +
		"&_pragma=busy_timeout(10000)&_pragma=synchronous(FULL)"
	db, err := gorm.Open(sqlite.Open(dsn+q), gormConfig())
	if err != nil {
		return nil, fmt.Errorf("directory: open database: %w", err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("directory: open database: %w", err)
	}
	// One writer at a time is all SQLite allows; one connection keeps
	// gorm's pool from meeting SQLITE_BUSY on upgrade of a read
	// transaction.
	sqlDB.SetMaxOpenConns(1)
	return &Store{db: db, dialect: dialect}, nil
}

// connectMySQL opens the primary and the replicas, checks each once,
// and starts the checker.
func connectMySQL(dsn string, o options) (*Store, error) {
	s := &Store{dialect: migrations.MySQL, maxLag: o.maxLag, downAfter: downAfter}
	var err error
	if s.migrateDSN, err = withoutTimeouts(dsn); err != nil {
		return nil, fmt.Errorf("directory: open database: %w", err)
	}
	if s.primary, err = newDatabase(dsn, "primary", RolePrimary); err != nil {
		return nil, fmt.Errorf("directory: open database: %w", err)
	}
	if s.replicas, err = o.replicaDatabases(); err != nil {
		s.primary.close()
		return nil, err
	}
	for _, d := range s.all() {
		if err == nil {
			err = d.openGorm(gormConfig())
		}
	}
	if err != nil {
		for _, d := range s.all() {
			d.close()
		}
		return nil, fmt.Errorf("directory: open database: %w", err)
	}
	s.db = s.primary.db
	if len(s.replicas) > 0 {
		s.checkAll()
	}
	s.stop = make(chan struct{})
	go s.checker(s.stop)
	return s, nil
}

func gormConfig() *gorm.Config {
	return &gorm.Config{
		Logger:                 logger.Discard,
		SkipDefaultTransaction: true,
		NowFunc:                func() time.Time { return time.Now().UTC() },
	}
}

// statementTimeout bounds the wait for a MySQL/MariaDB server to take or
// answer any one packet, when the URL sets no readTimeout or
// writeTimeout.
const statementTimeout = 30 * time.Second

// ParseURL splits a database URL into its dialect and the driver's
// connection string.
func ParseURL(rawURL string) (migrations.Dialect, string, error) {
	switch {
	case strings.HasPrefix(rawURL, "sqlite:"):
		path := strings.TrimPrefix(rawURL, "sqlite:")
		path = strings.TrimPrefix(path, "//")
		if path == "" {
			return "", "", fmt.Errorf("directory: database url %q names no file", rawURL)
		}
		return migrations.SQLite, path, nil
	case strings.HasPrefix(rawURL, "mysql://"):
		dsn := strings.TrimPrefix(rawURL, "mysql://")
		if !strings.Contains(dsn, "/") {
			return "", "", fmt.Errorf("directory: database url %q names no database", redact(rawURL))
		}
		// Times are kept in UTC; utf8mb4 holds every Chinese name.
		params := url.Values{}
		params.Set("parseTime", "true")
		params.Set("loc", "UTC")
		params.Set("charset", "utf8mb4")
		params.Set("collation", "utf8mb4_bin")
		// A primary that is gone must not hold callers for the
		// driver's default dial wait; loopback refuses at once, a
		// hung host does not.
		if !hasParam(dsn, "timeout") {
			params.Set("timeout", "2s")
		}
		// Nor must a server that hangs with a statement in flight
		// hold it forever: the statement fails with a broken
		// connection, which rolls its transaction back. The largest
		// OA import's statements take far less; migrations, which
		// may wait minutes for another node's, run without these
		// timeouts (see Migrate).
		for _, k := range []string{"readTimeout", "writeTimeout"} {
			if !hasParam(dsn, k) {
				params.Set(k, statementTimeout.String())
			}
		}
		// A statement waiting on another's row lock, or on a table's
		// metadata lock (behind another node's migration, itself
		// behind a long backup transaction), gives up (error 1205,
		// which Lifecycle runs again) well before the read timeout
		// would take the busy server for a hung one.
		for _, k := range []string{"innodb_lock_wait_timeout", "lock_wait_timeout"} {
			if !hasParam(dsn, k) {
				params.Set(k, "20")
			}
		}
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		return migrations.MySQL, dsn + sep + params.Encode(), nil
	}
	return "", "", fmt.Errorf("directory: database url %q: want sqlite:PATH or mysql://USER:PASS@tcp(HOST:PORT)/DB", redact(rawURL))
}

// hasParam reports whether a go-sql-driver DSN sets the parameter name.
func hasParam(dsn, name string) bool {
	_, query, ok := strings.Cut(dsn, "?")
	if !ok {
		return false
	}
	for _, kv := range strings.Split(query, "&") {
		if k, _, _ := strings.Cut(kv, "="); k == name {
			return true
		}
	}
	return false
}

// redact hides the password of a database URL for error messages.
func redact(rawURL string) string {
	at := strings.LastIndex(rawURL, "@")
	scheme := strings.Index(rawURL, "://")
	if at < 0 || scheme < 0 {
		return rawURL
	}
	userinfo := rawURL[scheme+3 : at]
	if colon := strings.Index(userinfo, ":"); colon >= 0 {
		return rawURL[:scheme+3] + userinfo[:colon] + ":***" + rawURL[at:]
	}
	return rawURL
}

// Migrate applies any migrations the database lacks and answers its
// schema version. On MySQL/MariaDB it runs over a pool of its own,
// opened without the read and write timeouts of the store's (ParseURL):
// the wait for another node's migrations, and a migration's own
// statements, may well last longer, and would fail half done.
func (s *Store) Migrate(ctx context.Context) (int64, error) {
	if s.primary == nil {
		sqlDB, err := s.db.DB()
		if err != nil {
			return 0, err
		}
		return migrations.Up(ctx, sqlDB, s.dialect)
	}
	db, err := sql.Open("mysql", s.migrateDSN)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	return migrations.Up(ctx, db, s.dialect)
}

// withoutTimeouts answers a go-sql-driver DSN without its read and write
// timeouts and lock waits: a migration may wait minutes, for another
// node's or behind a long transaction.
func withoutTimeouts(dsn string) (string, error) {
	c, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "", err
	}
	c.ReadTimeout, c.WriteTimeout = 0, 0
	delete(c.Params, "innodb_lock_wait_timeout")
	delete(c.Params, "lock_wait_timeout")
	return c.FormatDSN(), nil
}

// Migrations answers the state of every known migration.
func (s *Store) Migrations(ctx context.Context) ([]migrations.Status, error) {
	sqlDB, err := s.db.DB()
	if err != nil {
		return nil, err
	}
	return migrations.List(ctx, sqlDB, s.dialect)
}

// Dialect answers the kind of database the store runs on.
func (s *Store) Dialect() migrations.Dialect { return s.dialect }

// DB answers the gorm handle, for packages that plan and apply changes to
// the model in their own transactions (oasync). They must append to the
// change log with LogChange in the same transaction.
func (s *Store) DB() *gorm.DB { return s.db }

// SQL answers the database/sql handle underneath.
func (s *Store) SQL() (*sql.DB, error) { return s.db.DB() }

// Close stops the health checks and closes the database connections.
func (s *Store) Close() error {
	if s.primary != nil {
		s.stopOnce.Do(func() { close(s.stop) })
		for _, r := range s.replicas {
			r.close()
		}
		return s.primary.close()
	}
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
}

// LogChange appends one change to the log within tx. record is the state
// after the change and is stored as JSON. The actor is taken from the
// transaction's context (WithActor).
func LogChange(tx *gorm.DB, entity, entityID, op string, record any) error {
	data, err := json.Marshal(record)
	if err != nil {
		return fmt.Errorf("directory: change log: %w", err)
	}
	c := Change{
		At:       time.Now().UTC(),
		Entity:   entity,
		EntityID: entityID,
		Op:       op,
		Data:     string(data),
		Actor:    ActorFrom(tx.Statement.Context),
	}
	if err := tx.Create(&c).Error; err != nil {
		return fmt.Errorf("directory: change log: %w", err)
	}
	return nil
}

// LogChanges appends many changes at once, in the order given. A change
// without an actor gets the one of the transaction's context.
func LogChanges(tx *gorm.DB, changes []Change) error {
	if len(changes) == 0 {
		return nil
	}
	actor := ActorFrom(tx.Statement.Context)
	for i := range changes {
		if changes[i].Actor == "" {
			changes[i].Actor = actor
		}
	}
	if err := tx.CreateInBatches(changes, 500).Error; err != nil {
		return fmt.Errorf("directory: change log: %w", err)
	}
	return nil
}

// Entity names used in the change log.
const (
	EntityUnit    = "unit"
	EntityPost    = "post"
	EntityPerson  = "person"
	EntityAccount = "account"
	EntityGroup   = "group"
)
