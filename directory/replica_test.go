package directory_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/directory/dirtest"
)

// While the primary is down, logins and address lookups are answered by
// the replica and a write fails with ErrUnavailable, changing nothing;
// once the primary is back the same write succeeds.
func TestReplicaAnswersWhilePrimaryIsDown(t *testing.T) {
	pair := dirtest.StartPair(t)
	ctx := context.Background()
	s, err := directory.Open(ctx, pair.PrimaryURL(),
		directory.WithReplicas(pair.ReplicaURL()), directory.WithMaxReplicaLag(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	unit := directory.OrgUnit{ID: directory.NewID(), Kind: directory.UnitOrg, Name: "鹭航航空", Available: true}
	person := directory.Person{ID: directory.NewID(), Kind: directory.PersonStaff,
		Login: "LiNa", LoginLower: "lina", DisplayName: "李娜",
		UnitID: &unit.ID, Status: directory.PersonActive}
	acct := directory.Account{ID: directory.NewID(), PersonID: &person.ID,
		Address: "lina@egretair.example", Status: directory.AccountEnabled}
	for _, rec := range []any{&unit, &person, &acct} {
		if err := s.DB().Create(rec).Error; err != nil {
			t.Fatal(err)
		}
	}
	const pw = "航线准点 2026 春"
	if _, err := s.SetPassword(ctx, "lina", pw); err != nil {
		t.Fatal(err)
	}
	pair.WaitCaughtUp(t)
	waitHealth(t, s, "replica serves reads while the primary is up", func(h []directory.DatabaseHealth) bool {
		return h[1].Up && !h[1].Behind && h[1].ServesReads && h[0].ServesWrites
	})

	pair.KillPrimary(t)
	waitHealth(t, s, "primary marked down", func(h []directory.DatabaseHealth) bool {
		return !h[0].Up && !h[0].ServesWrites && h[1].ServesReads
	})

	start := time.Now()
	if got, err := s.Authenticate(ctx, "lina", pw); err != nil || got.ID != acct.ID {
		t.Errorf("login with the primary down: got %+v, %v", got, err)
	}
	if _, err := s.Authenticate(ctx, "lina", "wrong password"); !errors.Is(err, directory.ErrBadCredentials) {
		t.Errorf("wrong password with the primary down: got %v, want ErrBadCredentials", err)
	}
	if got, err := s.LookupAddress(ctx, "LiNa@egretair.example"); err != nil || got.ID != acct.ID {
		t.Errorf("address lookup with the primary down: got %+v, %v", got, err)
	}
	if _, err := s.LookupAddress(ctx, "nobody@egretair.example"); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("unknown address with the primary down: got %v, want ErrNotFound", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("reads with the primary down took %s; they must not wait on it", took)
	}

	lc := &directory.Lifecycle{Store: s}
	start = time.Now()
	_, err = lc.CreateUnit(ctx, directory.NewUnit{Kind: directory.UnitOrg, Name: "货运部"})
	if !errors.Is(err, directory.ErrUnavailable) {
		t.Fatalf("write with the primary down: got %v, want ErrUnavailable", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("a refused write took %s; it must fail fast", took)
	}
	if _, err := s.SetPassword(ctx, "lina", "另一个密码 2026 夏"); !errors.Is(err, directory.ErrUnavailable) {
		t.Errorf("password change with the primary down: got %v, want ErrUnavailable", err)
	}
	if n := countUnits(t, pair.ReplicaDSN()); n != 1 {
		t.Errorf("replica holds %d units after the refused write, want 1", n)
	}

	pair.StartPrimary(t)
	waitHealth(t, s, "primary back", func(h []directory.DatabaseHealth) bool {
		return h[0].Up && h[0].ServesWrites
	})
	u, err := lc.CreateUnit(ctx, directory.NewUnit{Kind: directory.UnitOrg, Name: "货运部"})
	if err != nil {
		t.Fatalf("write after the primary came back: %v", err)
	}
	pair.WaitCaughtUp(t)
	if n := countUnits(t, pair.ReplicaDSN()); n != 2 {
		t.Errorf("replica holds %d units after the write, want 2 (new unit %s)", n, u.ID)
	}
	if got, err := s.Authenticate(ctx, "lina", pw); err != nil || got.ID != acct.ID {
		t.Errorf("login after the primary came back: got %+v, %v", got, err)
	}
	h := s.Health()
	if h[0].Reads+h[1].Reads == 0 || h[1].Reads == 0 {
		t.Errorf("reads served are not counted: %+v", h)
	}
}

// waitHealth waits up to 10 seconds for the store's health to satisfy ok.
func waitHealth(t *testing.T, s *directory.Store, what string, ok func([]directory.DatabaseHealth) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		h := s.Health()
		if ok(h) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not seen in 10s; health %+v", what, h)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// countUnits counts the org units on a server, by a connection of its own.
func countUnits(t *testing.T, dsn string) int64 {
	t.Helper()
	s, err := directory.Connect("mysql://" + dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var n int64
	if err := s.DB().Model(&directory.OrgUnit{}).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// A primary whose every pooled connection is busy with a slow statement
// is not down: the checker reaches it over a connection of its own, so
// the store keeps it up all the while and a write right after succeeds.
func TestBusyPoolLeavesThePrimaryUp(t *testing.T) {
	pair := dirtest.StartPair(t)
	ctx := context.Background()
	s, err := directory.Open(ctx, pair.PrimaryURL(), directory.WithReplicas(pair.ReplicaURL()))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pool, err := s.SQL()
	if err != nil {
		t.Fatal(err)
	}

	// As many sleeping statements as the pool holds connections.
	const sleep = 4 * time.Second
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 32 {
		wg.Go(func() {
			var n int64
			errs <- s.DB().WithContext(ctx).Raw("SELECT SLEEP(?)", sleep.Seconds()).Scan(&n).Error
		})
	}
	deadline := time.Now().Add(5 * time.Second)
	for pool.Stats().InUse < 32 {
		if time.Now().After(deadline) {
			t.Fatalf("the pool never filled: %+v", pool.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := pool.Stats().MaxOpenConnections; got != 32 {
		t.Fatalf("the pool holds %d connections, the test fills 32", got)
	}
	filled := time.Now()
	for time.Since(filled) < sleep-500*time.Millisecond {
		if h := s.Health(); !h[0].Up || !h[0].ServesWrites {
			t.Fatalf("primary marked down %v after its pool filled: %+v",
				time.Since(filled).Round(time.Millisecond), h[0])
		}
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("sleeping statement: %v", err)
		}
	}
	lc := &directory.Lifecycle{Store: s}
	if _, err := lc.CreateUnit(ctx, directory.NewUnit{Kind: directory.UnitOrg, Name: "鹭航航空"}); err != nil {
		t.Fatalf("write after the busy spell: %v", err)
	}
	if h := s.Health(); !h[0].Up || h[0].Error != "" {
		t.Errorf("primary after the busy spell: %+v", h[0])
	}
}
