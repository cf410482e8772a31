package lease_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/egretair/egret/directory/dirtest"
	"github.com/egretair/egret/mailcore/lease"
	"github.com/egretair/egret/migrations"
)

// database answers a migrated MariaDB database for the test.
func database(t *testing.T) *sql.DB {
	t.Helper()
	dir := dirtest.Open(t, "mysql")
	db, err := dir.SQL()
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func TestLeaseAcquireRenewExpireTakeover(t *testing.T) {
	db := database(t)
	ctx := context.Background()
	ttl := 500 * time.Millisecond
	a := &lease.Lease{DB: db, Name: "b1", Holder: "b1a", TTL: ttl}
	b := &lease.Lease{DB: db, Name: "b1", Holder: "b1b", TTL: ttl}

	fa, err := a.Acquire(ctx)
	if err != nil || fa != 1 {
		t.Fatalf("first acquire = %d, %v; want fence 1", fa, err)
	}
	if _, err := b.Acquire(ctx); !errors.Is(err, lease.ErrHeld) {
		t.Fatalf("acquire of a live lease by another node = %v, want ErrHeld", err)
	}

	// Renewals keep it past its first lifetime.
	for range 4 {
		time.Sleep(ttl / 3)
		if err := a.Renew(ctx, fa); err != nil {
			t.Fatalf("renew: %v", err)
		}
	}
	if _, err := b.Acquire(ctx); !errors.Is(err, lease.ErrHeld) {
		t.Fatalf("acquire of a renewed lease = %v, want ErrHeld", err)
	}

	// Left alone, it lapses and the other member takes it.
	time.Sleep(ttl + 100*time.Millisecond)
	if st, err := a.Read(ctx); err != nil || st.Live || st.Holder != "b1a" {
		t.Fatalf("lapsed lease reads %+v, %v", st, err)
	}
	fb, err := b.Acquire(ctx)
	if err != nil || fb != fa+1 {
		t.Fatalf("takeover = %d, %v; want fence %d", fb, err, fa+1)
	}
	if err := a.Renew(ctx, fa); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("renew by the former holder = %v, want ErrLost", err)
	}
	st, err := a.Read(ctx)
	if err != nil || st.Holder != "b1b" || st.Fence != fb || !st.Live {
		t.Fatalf("lease after takeover reads %+v, %v", st, err)
	}

	// A member restarted under its own name takes its live lease back
	// at once, under a new fence.
	again, err := b.Acquire(ctx)
	if err != nil || again != fb+1 {
		t.Fatalf("re-acquire by the holder = %d, %v; want fence %d", again, err, fb+1)
	}
	if err := b.Renew(ctx, fb); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("renew under the old fence = %v, want ErrLost", err)
	}

	// A release lets the other member in without waiting.
	if err := b.Release(ctx, again); err != nil {
		t.Fatal(err)
	}
	if f, err := a.Acquire(ctx); err != nil || f != again+1 {
		t.Fatalf("acquire after release = %d, %v", f, err)
	}
}

func TestLeaseOneWinnerAmongRacers(t *testing.T) {
	db := database(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	wins := make(chan uint64, 8)
	for i := range 8 {
		wg.Go(func() {
			l := &lease.Lease{DB: db, Name: "b2", Holder: string(rune('a' + i)), TTL: 5 * time.Second}
			if f, err := l.Acquire(ctx); err == nil {
				wins <- f
			}
		})
	}
	wg.Wait()
	close(wins)
	var got []uint64
	for f := range wins {
		got = append(got, f)
	}
	if len(got) != 1 || got[0] != 1 {
		t.Fatalf("racing acquisitions won %v, want exactly one, fence 1", got)
	}
}

func TestKeeperHandsOverWhenTheHolderStops(t *testing.T) {
	db := database(t)
	ttl := 500 * time.Millisecond
	type event struct {
		node  string
		fence uint64
	}
	events := make(chan event, 8)
	keeper := func(name string) *lease.Keeper {
		return &lease.Keeper{
			Lease: lease.Lease{DB: db, Name: "b1", Holder: name, TTL: ttl},
			Poll:  50 * time.Millisecond,
			Gained: func(_ context.Context, f uint64) error {
				events <- event{name, f}
				return nil
			},
			Lost: func(string) { events <- event{name, 0} },
			Log:  slog.New(slog.DiscardHandler),
		}
	}
	ka, kb := keeper("b1a"), keeper("b1b")
	ctxA, stopA := context.WithCancel(context.Background())
	doneA := make(chan error, 1)
	go func() { doneA <- ka.Run(ctxA) }()
	if e := <-events; e != (event{"b1a", 1}) {
		t.Fatalf("first event %+v, want b1a gaining fence 1", e)
	}
	ctxB, stopB := context.WithCancel(context.Background())
	defer stopB()
	go kb.Run(ctxB)

	// The standby waits while the active renews.
	select {
	case e := <-events:
		t.Fatalf("event %+v while b1a holds the lease", e)
	case <-time.After(3 * ttl):
	}
	if err := ka.Holding(1); err != nil {
		t.Fatalf("active member not holding: %v", err)
	}

	stopA()
	if err := <-doneA; err != nil {
		t.Fatalf("release: %v", err)
	}
	want := []event{{"b1a", 0}, {"b1b", 2}}
	for _, w := range want {
		select {
		case e := <-events:
			if e != w {
				t.Fatalf("event %+v, want %+v", e, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no event, want %+v", w)
		}
	}
	if err := ka.Holding(1); err == nil {
		t.Fatal("stopped member still holding")
	}
	if f, active := kb.Status(); !active || f != 2 {
		t.Fatalf("standby status %d %v, want active under fence 2", f, active)
	}
}

func TestKeeperRefusesWritesAfterAPauseUntilItRenews(t *testing.T) {
	db := database(t)
	ttl := 300 * time.Millisecond
	lost := make(chan string, 1)
	k := &lease.Keeper{
		Lease:  lease.Lease{DB: db, Name: "b1", Holder: "b1a", TTL: ttl},
		Gained: func(context.Context, uint64) error { return nil },
		Lost:   func(cause string) { lost <- cause },
		Log:    slog.New(slog.DiscardHandler),
	}
	k.Try(context.Background())
	fence, active := k.Status()
	if !active || k.Holding(fence) != nil {
		t.Fatalf("after Try: fence %d, active %v, holding %v", fence, active, k.Holding(fence))
	}

	// No renewal for longer than the lease lives, as in a process
	// stopped by SIGSTOP: no writes, though nobody took the lease.
	time.Sleep(ttl + 50*time.Millisecond)
	if err := k.Holding(fence); err == nil {
		t.Fatal("holding after a pause longer than the lease")
	}

	// Another member takes the lapsed lease; the woken keeper's first
	// renewal finds out and stands by.
	other := &lease.Lease{DB: db, Name: "b1", Holder: "b1b", TTL: 5 * time.Second}
	if _, err := other.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go k.Run(ctx)
	select {
	case <-lost:
	case <-time.After(2 * time.Second):
		t.Fatal("the woken keeper did not give up the lease")
	}
	if _, active := k.Status(); active {
		t.Fatal("the woken keeper still active")
	}
}

func TestLeaseIsJudgedInUTCWhateverTheSessionTimeZone(t *testing.T) {
	dsn := dirtest.NewMySQLDatabase(t)
	ctx := context.Background()
	open := func(zone string) *sql.DB {
		t.Helper()
		db, err := sql.Open("mysql", dsn+"?time_zone="+url.QueryEscape("'"+zone+"'"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	if _, err := migrations.Up(ctx, open("+00:00"), migrations.MySQL); err != nil {
		t.Fatal(err)
	}
	// Each pair of members: the holder's session in one zone, the
	// other's in another, as after a change to summer time.
	for _, zones := range [][2]string{{"+00:00", "+01:00"}, {"+01:00", "+00:00"}} {
		back := "b-" + zones[0]
		holder := &lease.Lease{DB: open(zones[0]), Name: back, Holder: "a", TTL: 5 * time.Second}
		other := &lease.Lease{DB: open(zones[1]), Name: back, Holder: "b", TTL: 5 * time.Second}
		if _, err := holder.Acquire(ctx); err != nil {
			t.Fatal(err)
		}
		if f, err := other.Acquire(ctx); !errors.Is(err, lease.ErrHeld) {
			t.Errorf("holder at %s, other at %s: the other took the live lease (fence %d, %v)",
				zones[0], zones[1], f, err)
		}
		if st, err := other.Read(ctx); err != nil || !st.Live || st.Holder != "a" {
			t.Errorf("holder at %s, other at %s: the other reads %+v, %v; want live, held by a",
				zones[0], zones[1], st, err)
		}
	}
}

func TestKeeperReadsTheFolderFenceAndGivesUpABrokenFolder(t *testing.T) {
	db := database(t)
	ttl := 500 * time.Millisecond
	var mu sync.Mutex
	var folder error
	lost := make(chan string, 4)
	k := &lease.Keeper{
		Lease:   lease.Lease{DB: db, Name: "b1", Holder: "b1a", TTL: ttl},
		Poll:    50 * time.Millisecond,
		Backoff: 2 * time.Second,
		Gained:  func(context.Context, uint64) error { return nil },
		Lost:    func(cause string) { lost <- cause },
		Check: func() error {
			mu.Lock()
			defer mu.Unlock()
			return folder
		},
		Log: slog.New(slog.DiscardHandler),
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go k.Run(ctx)
	waitActive := func() uint64 {
		t.Helper()
		for range 100 {
			if f, active := k.Status(); active {
				return f
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatal("keeper never active")
		return 0
	}
	waitActive()

	// The folder's fence file names a newer holder: the member stands
	// by at its next tick, though the database says nothing.
	mu.Lock()
	folder = fmt.Errorf("%w: folder fence 9", lease.ErrLost)
	mu.Unlock()
	select {
	case <-lost:
	case <-time.After(2 * time.Second):
		t.Fatal("the keeper did not stand by for a newer fence in the folder")
	}

	// It takes the lease again (it is still the holder in the
	// database); then the folder's fence file goes: the lease is given
	// back at once, for the other member, and not taken again before
	// the back-off.
	mu.Lock()
	folder = nil
	mu.Unlock()
	waitActive()
	mu.Lock()
	folder = errors.New("fence file missing")
	mu.Unlock()
	select {
	case <-lost:
	case <-time.After(2 * time.Second):
		t.Fatal("the keeper did not give up a broken folder")
	}
	gaveUp := time.Now()
	other := &lease.Lease{DB: db, Name: "b1", Holder: "b1b", TTL: 300 * time.Millisecond}
	if _, err := other.Acquire(context.Background()); err != nil {
		t.Fatalf("the other member cannot take the lease given up: %v", err)
	}
	time.Sleep(time.Second)
	if _, active := k.Status(); active {
		t.Fatalf("the keeper took the lease again %v after giving it up", time.Since(gaveUp))
	}
	mu.Lock()
	folder = nil
	mu.Unlock()
	waitActive()
	if d := time.Since(gaveUp); d < 2*time.Second {
		t.Fatalf("the keeper took the lease again after %v, want the back-off of 2s", d)
	}
}

func TestKeeperSaysWhenTwoProcessesShareANodeName(t *testing.T) {
	db := database(t)
	ttl := 500 * time.Millisecond
	var logs bytes.Buffer
	var logMu sync.Mutex
	k := &lease.Keeper{
		Lease:  lease.Lease{DB: db, Name: "b1", Holder: "b1x", TTL: ttl},
		Gained: func(context.Context, uint64) error { return nil },
		Lost:   func(string) {},
		Log:    slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, nil)),
	}
	k.Try(context.Background())
	if _, active := k.Status(); !active {
		t.Fatal("keeper not active after Try")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go k.Run(ctx)

	// A second process with the same node.name takes the lease.
	twin := &lease.Lease{DB: db, Name: "b1", Holder: "b1x", TTL: ttl}
	if _, err := twin.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		logMu.Lock()
		out := logs.String()
		logMu.Unlock()
		if strings.Contains(out, "level=ERROR") && strings.Contains(out, "own node.name") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no error naming the shared node.name; log:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, active := k.Status(); active {
		t.Fatal("keeper still active after its twin took the lease")
	}
}

// lockedWriter serialises writes to a buffer read by the test.
type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestKeeperIsStandbyUntilTheStoreServes checks that a member which
// took the lease says it is active only once Gained has served the
// store: while Gained runs its status is standby, and a Gained that
// fails leaves it never having said active.
func TestKeeperIsStandbyUntilTheStoreServes(t *testing.T) {
	db := database(t)
	entered := make(chan uint64)
	finish := make(chan error)
	k := &lease.Keeper{
		Lease: lease.Lease{DB: db, Name: "b1", Holder: "b1a", TTL: 2 * time.Second},
		Gained: func(_ context.Context, f uint64) error {
			entered <- f
			return <-finish
		},
		Lost: func(string) {},
		Log:  slog.New(slog.DiscardHandler),
	}
	// watch samples the keeper's status until stop closes, and says
	// whether it was ever active.
	watch := func(stop <-chan struct{}) <-chan bool {
		seen := make(chan bool, 1)
		go func() {
			active := false
			for {
				if _, a := k.Status(); a {
					active = true
				}
				select {
				case <-stop:
					seen <- active
					return
				case <-time.After(time.Millisecond):
				}
			}
		}()
		return seen
	}

	// Gained fails, as for a folder holding another store.
	stop := make(chan struct{})
	seen := watch(stop)
	tried := make(chan struct{})
	go func() { k.Try(context.Background()); close(tried) }()
	fence := <-entered
	time.Sleep(100 * time.Millisecond)
	if f, active := k.Status(); active {
		t.Fatalf("status active under fence %d while Gained runs", f)
	}
	if err := k.Holding(fence); err == nil {
		t.Fatal("holding while Gained runs")
	}
	finish <- errors.New("wrong folder")
	<-tried
	close(stop)
	if <-seen {
		t.Fatal("status said active for a lease whose Gained failed")
	}
	if st, err := k.Lease.Read(context.Background()); err != nil || st.Live {
		t.Fatalf("lease after a failed Gained reads %+v, %v; want it given back", st, err)
	}

	// Gained succeeds: active from then on, under the new fence.
	stop = make(chan struct{})
	seen = watch(stop)
	tried = make(chan struct{})
	go func() { k.Try(context.Background()); close(tried) }()
	fence = <-entered
	time.Sleep(100 * time.Millisecond)
	if _, active := k.Status(); active {
		t.Fatal("status active while Gained runs")
	}
	close(stop)
	if <-seen {
		t.Fatal("status said active before Gained returned")
	}
	finish <- nil
	<-tried
	if f, active := k.Status(); !active || f != fence {
		t.Fatalf("status %d %v after Gained, want active under fence %d", f, active, fence)
	}
	if err := k.Holding(fence); err != nil {
		t.Fatalf("not holding after Gained: %v", err)
	}
}

// cutProxy relays TCP connections to a database until it is cut: then
// it drops every relayed connection and refuses new ones, as a
// database server that died would, until it is mended.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  []net.Conn
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.setCut(true) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.cut {
				p.mu.Unlock()
				c.Close()
				continue
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { io.Copy(s, c); s.Close() }()
			go func() { io.Copy(c, s); c.Close() }()
		}
	}()
	return p
}

func (p *cutProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

// TestKeeperKeepsTheActiveThroughADatabaseOutage checks that when the
// database is away longer than a lease's term and comes back, the
// standby does not take the lapsed lease from an active that is alive:
// the active renews first.
func TestKeeperKeepsTheActiveThroughADatabaseOutage(t *testing.T) {
	server, err := mysql.ParseDSN(dirtest.MySQLServerDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	var name string
	if err := database(t).QueryRow("SELECT DATABASE()").Scan(&name); err != nil {
		t.Fatal(err)
	}
	// The database is migrated above; both members reach it through
	// one proxy, as two hosts reach one primary.
	proxy := newCutProxy(t, server.Addr)
	// The driver logs every connection the cut drops.
	mysql.SetLogger(log.New(io.Discard, "", 0))
	cfg := server.Clone()
	cfg.Addr, cfg.DBName = proxy.ln.Addr().String(), name
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = time.Second, time.Second, time.Second
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })

	ttl := 600 * time.Millisecond
	gained := make(chan string, 8)
	keeper := func(node string) *lease.Keeper {
		return &lease.Keeper{
			Lease: lease.Lease{DB: db, Name: "b1", Holder: node, TTL: ttl},
			Poll:  50 * time.Millisecond,
			Gained: func(context.Context, uint64) error {
				gained <- node
				return nil
			},
			Lost: func(string) {},
			Log:  slog.New(slog.DiscardHandler),
		}
	}
	ka, kb := keeper("b1a"), keeper("b1b")
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go ka.Run(ctx)
	if got := <-gained; got != "b1a" {
		t.Fatalf("%s gained the lease first, want b1a", got)
	}
	go kb.Run(ctx)
	time.Sleep(2 * ttl)

	for round := range 2 {
		proxy.setCut(true)
		time.Sleep(3 * ttl)
		proxy.setCut(false)
		select {
		case got := <-gained:
			t.Fatalf("round %d: %s took the lease when the database came back", round, got)
		case <-time.After(4 * ttl):
		}
		if f, active := ka.Status(); !active || f != 1 {
			t.Fatalf("round %d: the active is at fence %d, active %v; want it to keep fence 1", round, f, active)
		}
	}
}
