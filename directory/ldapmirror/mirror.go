package ldapmirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/go-ldap/ldap/v3"

	"github.com/egretair/egret/directory"
)

// Mirror follows the change log and applies it to LDAP. Its zero value
// is not usable: Config and Store must be set.
type Mirror struct {
	Config Config
	Store  *directory.Store
	Log    *slog.Logger
	// Metrics, when set, receive the lag and the work done.
	Metrics *Metrics
	// Poll is how often the change log is read when idle; zero means
	// 100ms.
	Poll time.Duration
	// BatchSize bounds the rows applied in one step; zero means 500.
	BatchSize int
	// FullPassAfter is the backlog, in rows, beyond which a full pass
	// replaces replaying the log; zero means 5000.
	FullPassAfter int64
	// ReconcileEvery runs a full pass that often; zero never does.
	ReconcileEvery time.Duration

	conn     *ldap.Conn
	gapSince time.Time
	// failures counts the steps failed in a row with the server
	// answering; see Run.
	failures int
	mu       sync.Mutex
}

// gapWait is how long a hole in the change log's sequence is waited on
// before it is taken to be a transaction that rolled back. MySQL hands
// out AUTO_INCREMENT values at insert, so a transaction that started
// first may commit after a later one; reading past its hole at once
// would skip its row.
const gapWait = 3 * time.Second

func (m *Mirror) log() *slog.Logger {
	if m.Log != nil {
		return m.Log
	}
	return slog.Default()
}

func (m *Mirror) poll() time.Duration {
	if m.Poll > 0 {
		return m.Poll
	}
	return 100 * time.Millisecond
}

// Run applies changes until ctx ends. A step that fails is retried with
// exponential backoff (half a second growing to half a minute) from the
// cursor, which only moves after LDAP acknowledged a batch; so an
// outage delays the mirror and loses nothing. After three failures in a
// row with the server answering, a full pass takes over: it repairs
// whatever made the replay fail, such as an entry deleted by hand under
// which a change adds.
func (m *Mirror) Run(ctx context.Context) error {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = 500 * time.Millisecond
	bo.MaxInterval = 30 * time.Second
	bo.MaxElapsedTime = 0
	var nextReconcile time.Time
	if m.ReconcileEvery > 0 {
		nextReconcile = time.Now().Add(m.ReconcileEvery)
	}
	defer m.closeConn()
	for {
		var n int
		var err error
		if !nextReconcile.IsZero() && time.Now().After(nextReconcile) {
			_, err = m.pass(ctx, "reconcile")
			if err == nil {
				nextReconcile = time.Now().Add(m.ReconcileEvery)
			}
		} else {
			n, err = m.Step(ctx)
		}
		if ctx.Err() != nil {
			return nil
		}
		wait := m.poll()
		if err != nil {
			wait = bo.NextBackOff()
			if m.Metrics != nil {
				m.Metrics.Failures.Inc()
			}
			m.log().Warn("ldap mirror step failed, will retry",
				slog.Any("err", err), slog.Duration("retry_in", wait))
			m.closeConn()
		} else {
			bo.Reset()
			if n > 0 {
				continue
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

func (m *Mirror) closeConn() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.conn != nil {
		m.conn.Close()
		m.conn = nil
	}
}

// Step applies the next batch of changes, or runs a full pass when the
// mirror has never run or the backlog is long, and answers how many
// rows it consumed.
func (m *Mirror) Step(ctx context.Context) (int, error) {
	cur, started, err := readCursor(ctx, m.Store)
	if err != nil {
		return 0, err
	}
	defer m.updateLag(ctx)
	if !started {
		return m.pass(ctx, "start")
	}
	if m.failures >= 3 {
		return m.pass(ctx, "recovery")
	}
	head, err := headSeq(ctx, m.Store)
	if err != nil {
		return 0, err
	}
	after := m.FullPassAfter
	if after <= 0 {
		after = 5000
	}
	if head-cur > after {
		return m.pass(ctx, "backlog")
	}
	if head <= cur {
		return 0, nil
	}

	rows, err := m.readBatch(ctx, cur)
	if err != nil || len(rows) == 0 {
		return 0, err
	}
	if err := m.applyBatch(ctx, rows); err != nil {
		if !isNetwork(err) {
			m.failures++
		}
		return 0, err
	}
	m.failures = 0
	last := rows[len(rows)-1].Seq
	if err := writeCursor(ctx, m.Store, last); err != nil {
		return 0, err
	}
	return len(rows), nil
}

// pass runs a full pass and moves the cursor to the head it read.
func (m *Mirror) pass(ctx context.Context, cause string) (int, error) {
	start := time.Now()
	rep, err := fullPass(ctx, m.Config, m.Store, false)
	if err != nil {
		if !isNetwork(err) {
			m.failures++
		}
		return 0, err
	}
	m.failures = 0
	if m.Metrics != nil {
		m.Metrics.Passes.WithLabelValues(cause).Inc()
		m.count(actAdd, len(rep.Added))
		m.count(actMove, len(rep.Moved))
		m.count(actModify, len(rep.Modified))
		m.count(actDelete, len(rep.Deleted))
	}
	cur, _, err := readCursor(ctx, m.Store)
	if err != nil {
		return 0, err
	}
	if rep.Head > cur || cause == "start" {
		if err := writeCursor(ctx, m.Store, max(cur, rep.Head)); err != nil {
			return 0, err
		}
	}
	lvl := slog.LevelInfo
	if cause == "reconcile" && rep.Changed() == 0 {
		lvl = slog.LevelDebug
	}
	m.log().Log(ctx, lvl, "ldap full pass done", slog.String("cause", cause),
		slog.Int("added", len(rep.Added)), slog.Int("moved", len(rep.Moved)),
		slog.Int("modified", len(rep.Modified)), slog.Int("deleted", len(rep.Deleted)),
		slog.Int64("head", rep.Head), slog.Duration("took", time.Since(start)))
	if cause == "reconcile" {
		for _, dn := range rep.Deleted {
			m.log().Warn("ldap drift removed", slog.String("dn", dn))
		}
		for _, dn := range rep.Modified {
			m.log().Warn("ldap drift repaired", slog.String("dn", dn))
		}
	}
	return int(max(0, rep.Head-cur)), nil
}

// Reconcile runs a full pass now (see the package comment); with dry it
// only reports what it would change.
func (m *Mirror) Reconcile(ctx context.Context, dry bool) (*Report, error) {
	return fullPass(ctx, m.Config, m.Store, dry)
}

func (m *Mirror) count(action string, n int) {
	if m.Metrics != nil && n > 0 {
		m.Metrics.Entries.WithLabelValues(action).Add(float64(n))
	}
}

func (m *Mirror) updateLag(ctx context.Context) {
	if m.Metrics == nil {
		return
	}
	lag, err := Status(ctx, m.Store)
	if err != nil {
		return
	}
	m.Metrics.LagRows.Set(float64(lag.Rows))
	m.Metrics.LagSeconds.Set(lag.Seconds)
	m.Metrics.Cursor.Set(float64(lag.Cursor))
}

// readBatch answers the rows after cur, cut at a hole in the sequence
// until the hole is older than gapWait.
func (m *Mirror) readBatch(ctx context.Context, cur int64) ([]directory.Change, error) {
	size := m.BatchSize
	if size <= 0 {
		size = 500
	}
	var rows []directory.Change
	err := m.Store.DB().WithContext(ctx).Where("seq > ?", cur).
		Order("seq").Limit(size).Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("ldapmirror: read change log after %d: %w", cur, err)
	}
	next := cur + 1
	for i, r := range rows {
		if r.Seq != next {
			if m.gapSince.IsZero() {
				m.gapSince = time.Now()
			}
			if time.Since(m.gapSince) < gapWait {
				return rows[:i], nil
			}
			m.log().Info("ldap mirror skips a hole in the change log",
				slog.Int64("from", next), slog.Int64("to", r.Seq-1))
		}
		next = r.Seq + 1
	}
	m.gapSince = time.Time{}
	return rows, nil
}

// affected is what a batch touches.
type affected struct {
	units, people, groups map[string]bool
}

// collect reads which records a batch touches. An account's change is
// its person's; the person id comes from the record in the row, which
// survives a purge.
func collect(ctx context.Context, s *directory.Store, rows []directory.Change) (*affected, error) {
	a := &affected{units: map[string]bool{}, people: map[string]bool{}, groups: map[string]bool{}}
	var accounts []string
	for _, r := range rows {
		switch r.Entity {
		case directory.EntityUnit:
			a.units[r.EntityID] = true
		case directory.EntityPerson:
			a.people[r.EntityID] = true
		case directory.EntityGroup:
			a.groups[r.EntityID] = true
		case directory.EntityAccount:
			var rec struct {
				PersonID *string `json:"person_id"`
			}
			if json.Unmarshal([]byte(r.Data), &rec) == nil && rec.PersonID != nil {
				a.people[*rec.PersonID] = true
			} else if r.Before != nil && json.Unmarshal([]byte(*r.Before), &rec) == nil && rec.PersonID != nil {
				a.people[*rec.PersonID] = true
			} else {
				accounts = append(accounts, r.EntityID)
			}
		}
	}
	if len(accounts) > 0 {
		var ids []*string
		err := s.DB().WithContext(ctx).Model(&directory.Account{}).
			Where("id IN ?", accounts).Pluck("person_id", &ids).Error
		if err != nil {
			return nil, fmt.Errorf("ldapmirror: people of accounts: %w", err)
		}
		for _, id := range ids {
			if id != nil {
				a.people[*id] = true
			}
		}
	}
	return a, nil
}

// applyBatch makes LDAP hold the records a batch touches as the
// directory holds them now. Units come first, parents before children,
// then people, then groups, then units the directory no longer has.
// A group is redone when it changed, when a member changed, and after
// any unit change, which may have renamed its members' DNs.
func (m *Mirror) applyBatch(ctx context.Context, rows []directory.Change) error {
	a, err := collect(ctx, m.Store, rows)
	if err != nil {
		return err
	}
	if len(a.units) > 0 {
		// A person's entry carries their unit's name in ou.
		var ids []string
		err := m.Store.DB().WithContext(ctx).Model(&directory.Person{}).
			Where("unit_id IN ?", keys(a.units)).Pluck("id", &ids).Error
		if err != nil {
			return fmt.Errorf("ldapmirror: people of units: %w", err)
		}
		for _, id := range ids {
			a.people[id] = true
		}
	}
	st := &dirState{}
	if st.units, err = loadUnits(ctx, m.Store); err != nil {
		return err
	}
	if st.people, err = loadPeople(ctx, m.Store, keys(a.people)); err != nil {
		return err
	}
	if err := loadGroups(ctx, m.Store, st); err != nil {
		return err
	}
	if len(a.units) == 0 {
		for gid, ms := range st.members {
			for _, mem := range ms {
				if a.people[mem.MemberID] {
					a.groups[gid] = true
				}
			}
		}
	} else {
		for gid := range st.groups {
			a.groups[gid] = true
		}
	}

	conn, err := m.connect()
	if err != nil {
		return err
	}
	w := &writer{conn: conn, base: m.Config.BaseDN}

	// The units and groups as LDAP holds them, for their RDNs.
	index, err := m.readIndex(conn)
	if err != nil {
		return err
	}
	var cur []*current
	for _, c := range index {
		cur = append(cur, c)
	}
	l := newLayout(m.Config.BaseDN, st.units, st.groups, pinnedRDNs(cur))
	for _, e := range l.containers() {
		if _, err := w.upsert(e, index[e.ID]); err != nil {
			return err
		}
	}

	var units []string
	for id := range a.units {
		if st.units[id] != nil {
			units = append(units, id)
		}
	}
	sort.Slice(units, func(i, j int) bool { return l.depth[units[i]] < l.depth[units[j]] })
	for _, id := range units {
		acts, err := w.upsert(l.unitEntry(id), index[id])
		if err != nil {
			return err
		}
		m.countActs(acts)
		if contains(acts, actMove) {
			// The subtree moved with it; the index is stale.
			if index, err = m.readIndex(conn); err != nil {
				return err
			}
		}
	}

	for id := range a.people {
		hs, err := findByID(conn, m.Config.BaseDN, id)
		if err != nil {
			return err
		}
		p := st.people[id]
		var keep *current
		if p != nil {
			want := l.personEntry(p)
			for _, h := range hs {
				if keep == nil || h.norm == normDN(want.DN) {
					keep = h
				}
			}
			acts, err := w.upsert(want, keep)
			if err != nil {
				return err
			}
			m.countActs(acts)
			if len(acts) > 0 {
				m.log().Debug("ldap entry written", slog.String("person", id),
					slog.String("dn", want.DN), slog.String("actions", strings.Join(acts, ",")))
			}
		}
		for _, h := range hs {
			if h != keep {
				if err := w.remove(h.DN); err != nil {
					return err
				}
				m.count(actDelete, 1)
			}
		}
	}

	for id := range a.groups {
		have := index[id]
		if have != nil {
			// The index left the members out.
			if have, err = readEntry(conn, have.DN); err != nil {
				return err
			}
		}
		if g := st.groups[id]; g != nil {
			acts, err := w.upsert(l.groupEntry(g, st.members[id], st.people), have)
			if err != nil {
				return err
			}
			m.countActs(acts)
		} else if have != nil {
			if err := w.remove(have.DN); err != nil {
				return err
			}
			m.count(actDelete, 1)
		}
	}

	var gone []*current
	for id := range a.units {
		if st.units[id] == nil && index[id] != nil {
			gone = append(gone, index[id])
		}
	}
	sort.Slice(gone, func(i, j int) bool {
		return strings.Count(gone[i].norm, ",") > strings.Count(gone[j].norm, ",")
	})
	for _, c := range gone {
		if err := w.remove(c.DN); err != nil {
			return err
		}
		m.count(actDelete, 1)
	}
	return nil
}

// readIndex answers egret's units and containers, whole, and its
// groups without their members, in LDAP by id.
func (m *Mirror) readIndex(conn *ldap.Conn) (map[string]*current, error) {
	f := "(&(uniqueIdentifier=*)(objectClass=organizationalUnit))"
	es, err := searchAll(conn, m.Config.BaseDN, ldap.ScopeWholeSubtree, f, []string{"*"})
	if err != nil {
		return nil, err
	}
	f = "(&(uniqueIdentifier=*)(objectClass=groupOfNames))"
	gs, err := searchAll(conn, m.Config.BaseDN, ldap.ScopeWholeSubtree, f,
		[]string{"uniqueIdentifier", "cn"})
	if err != nil {
		return nil, err
	}
	out := make(map[string]*current, len(es)+len(gs))
	for _, e := range append(es, gs...) {
		c := fromLDAP(e)
		out[c.ID] = c
	}
	if len(out) == 0 {
		// An empty server, or one whose tree was removed: the base
		// may be missing too.
		be, err := baseEntry(m.Config.BaseDN)
		if err != nil {
			return nil, err
		}
		if err := conn.Add(addRequest(be)); err != nil &&
			!ldap.IsErrorWithCode(err, ldap.LDAPResultEntryAlreadyExists) {
			return nil, fmt.Errorf("ldapmirror: add base %s: %w", m.Config.BaseDN, err)
		}
	}
	return out, nil
}

func (m *Mirror) connect() (*ldap.Conn, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.conn != nil && !m.conn.IsClosing() {
		return m.conn, nil
	}
	c, err := m.Config.dial()
	if err != nil {
		return nil, err
	}
	m.conn = c
	return c, nil
}

func (m *Mirror) countActs(acts []string) {
	for _, a := range acts {
		m.count(a, 1)
	}
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// isNetwork reports whether err is the server being unreachable rather
// than it refusing an operation.
func isNetwork(err error) bool {
	var le *ldap.Error
	if errors.As(err, &le) {
		switch le.ResultCode {
		case ldap.ErrorNetwork, ldap.LDAPResultUnavailable, ldap.LDAPResultBusy:
			return true
		}
	}
	return false
}
