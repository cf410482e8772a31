package directory_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"gorm.io/gorm"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/directory/dirtest"
	"github.com/egretair/egret/mailcore"
	"github.com/egretair/egret/sso/guard"
	"github.com/egretair/egret/sso/oidcp"
)

// openPair opens a store on the pair's primary with its replica and
// waits until the replica serves reads.
func openPair(t *testing.T, pair *dirtest.Pair, opts ...directory.Option) *directory.Store {
	t.Helper()
	opts = append([]directory.Option{directory.WithReplicas(pair.ReplicaURL())}, opts...)
	s, err := directory.Open(context.Background(), pair.PrimaryURL(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	waitHealth(t, s, "replica serves reads", func(h []directory.DatabaseHealth) bool {
		return h[0].Up && h[1].Up && !h[1].Behind && h[1].ServesReads
	})
	return s
}

// replicaRoot answers a root connection to the pair's replica over TCP.
func replicaRoot(t *testing.T, pair *dirtest.Pair) *sql.DB {
	t.Helper()
	c, err := mysql.ParseDSN(pair.ReplicaDSN())
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("mysql", "root@tcp("+c.Addr+")/")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// delayReplica makes the pair's replica apply every event d after the
// primary wrote it, as a replica that trails does.
func delayReplica(t *testing.T, pair *dirtest.Pair, d time.Duration) {
	t.Helper()
	root := replicaRoot(t, pair)
	for _, q := range []string{"STOP SLAVE",
		"CHANGE MASTER TO MASTER_DELAY=" + strconv.Itoa(int(d.Seconds())), "START SLAVE"} {
		if _, err := root.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// A statement on the primary, or a lag-tolerant read, that runs out of
// its context's time or is cancelled says nothing of the database: the
// primary stays up and the next write goes through.
func TestReplicaTimedOutStatementLeavesThePrimaryUp(t *testing.T) {
	pair := dirtest.StartPair(t)
	s := openPair(t, pair)
	ctx := context.Background()
	lc := &directory.Lifecycle{Store: s}

	write := func(what string) {
		t.Helper()
		if !s.Health()[0].Up {
			t.Errorf("after %s: the primary is marked down", what)
		}
		if _, err := lc.CreateUnit(ctx, directory.NewUnit{Kind: directory.UnitOrg, Name: what}); err != nil {
			t.Errorf("write after %s: %v", what, err)
		}
	}

	dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	err := s.DB().WithContext(dctx).Exec("SELECT SLEEP(2)").Error
	cancel()
	if err == nil {
		t.Fatal("a 2 s statement under a 50 ms deadline succeeded")
	}
	write("a statement past its deadline on the primary")

	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(50*time.Millisecond, cancel)
	if err := s.DB().WithContext(cctx).Exec("SELECT SLEEP(2)").Error; err == nil {
		t.Fatal("a cancelled 2 s statement succeeded")
	}
	write("a cancelled statement on the primary")

	// The replica answers first; its read runs out of time and must
	// not be tried again on the primary with the spent context.
	dctx, cancel = context.WithTimeout(ctx, 50*time.Millisecond)
	start := time.Now()
	err = s.Read(dctx, func(db *gorm.DB) error { return db.Exec("SELECT SLEEP(2)").Error })
	cancel()
	if err == nil {
		t.Fatal("a 2 s read under a 50 ms deadline succeeded")
	}
	if errors.Is(err, directory.ErrUnavailable) {
		t.Errorf("a read past its deadline answered %v; it is no outage", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("a read under a 50 ms deadline took %s", took)
	}
	write("a lag-tolerant read past its deadline")
	if h := s.Health(); !h[1].Up {
		t.Errorf("the replica is marked down after a read past its deadline: %+v", h[1])
	}
}

// A replica that cannot be reached when the store opens does not stop
// it: the store opens, the replica is reported down, and reads and
// writes go to the primary.
func TestReplicaUnreachableAtOpen(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()

	ctx := context.Background()
	s, err := directory.Open(ctx, "mysql://"+dirtest.NewMySQLDatabase(t),
		directory.WithReplicas("mysql://egret:x@tcp("+dead+")/egret"))
	if err != nil {
		t.Fatalf("open with a replica that cannot be reached: %v", err)
	}
	defer s.Close()
	h := s.Health()
	if len(h) != 2 || h[1].Up || !h[0].Up || !h[0].ServesReads {
		t.Errorf("health with the replica unreachable: %+v", h)
	}
	lc := &directory.Lifecycle{Store: s, Domain: "egretair.example"}
	const pw = "登机口 B12 改 B14"
	if _, err := lc.CreateUser(ctx, directory.NewUser{Login: "gaofei", DisplayName: "高飞", Password: pw}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, "gaofei", pw); err != nil {
		t.Errorf("login with the replica unreachable: %v", err)
	}
	if _, err := s.LookupAddress(ctx, "gaofei@egretair.example"); err != nil {
		t.Errorf("address lookup with the replica unreachable: %v", err)
	}
}

// The reads that decide access read the primary while it is up, so a
// change is in force at once though the replica trails by seconds:
// a disabled account, a changed password, a revoked API key, a login
// lock just written, a signing key just rotated and a home just moved.
// Address lookups still go to the replica.
func TestAccessReadsDoNotTrustALaggingReplica(t *testing.T) {
	pair := dirtest.StartPair(t)
	s := openPair(t, pair, directory.WithMaxReplicaLag(2*time.Minute))
	ctx := context.Background()
	lc := &directory.Lifecycle{Store: s, Domain: "egretair.example"}
	const pw = "跑道 18L 今晚关闭"
	u, err := lc.CreateUser(ctx, directory.NewUser{Login: "liuyang", DisplayName: "刘洋", Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	_, secret, err := s.CreateAPIKey(ctx, "oa-sync", []string{"directory:read"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetHomeNode(ctx, u.Account.ID, "b1"); err != nil {
		t.Fatal(err)
	}
	keys := oidcp.Keys{DB: s.DB(), Read: s.ReadPrimaryFirst}
	if _, err := keys.Active(ctx); err != nil {
		t.Fatal(err)
	}
	pair.WaitCaughtUp(t)
	delayReplica(t, pair, 30*time.Second)
	waitHealth(t, s, "the delayed replica serves reads", func(h []directory.DatabaseHealth) bool {
		return h[1].Up && !h[1].Behind && h[1].ServesReads
	})

	// Each change below is made on the primary and checked at once.
	if _, err := lc.SetEnabled(ctx, u.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, "liuyang", pw); !errors.Is(err, directory.ErrBadCredentials) {
		t.Errorf("login to a disabled account: got %v, want ErrBadCredentials", err)
	}
	if _, err := lc.SetEnabled(ctx, u.ID, true); err != nil {
		t.Fatal(err)
	}
	const pw2 = "跑道 18L 明早开放"
	if _, err := s.SetPassword(ctx, "liuyang", pw2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, "liuyang", pw2); err != nil {
		t.Errorf("login with the new password: %v", err)
	}
	if _, err := s.Authenticate(ctx, "liuyang", pw); !errors.Is(err, directory.ErrBadCredentials) {
		t.Errorf("login with the old password: got %v, want ErrBadCredentials", err)
	}

	if _, err := s.RevokeAPIKey(ctx, "oa-sync"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.VerifyAPIKey(ctx, secret); !errors.Is(err, directory.ErrBadKey) {
		t.Errorf("a revoked API key: got %v, want ErrBadKey", err)
	}

	g := guard.New(guard.Config{AccountLimit: 3, AddressLimit: 100, BaseDelay: time.Millisecond,
		MaxDelay: time.Millisecond, Read: s.ReadPrimaryFirst,
		Resolve: func(ctx context.Context, user string) string {
			if a, _, err := s.FindAccount(ctx, user); err == nil {
				return a.ID
			}
			return ""
		}}, s.DB(), nil)
	for range 3 {
		g.Failed(ctx, "liuyang", "192.0.2.9")
	}
	if _, err := g.Check(ctx, "liuyang", "192.0.2.10"); !errors.Is(err, mailcore.ErrLocked) {
		t.Errorf("sign-in right after the lock was written: got %v, want ErrLocked", err)
	}

	rotated, err := keys.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	published, err := keys.Published(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(published) == 0 || published[0].ID != rotated.ID {
		t.Errorf("published keys right after a rotation do not start with the new key %s: %d keys", rotated.ID, len(published))
	}

	if err := s.SetHomeNode(ctx, u.Account.ID, "b2"); err != nil {
		t.Fatal(err)
	}
	if home, err := s.HomeNode(ctx, u.Account.ID); err != nil || home != "b2" {
		t.Errorf("home right after a move to b2: %q, %v", home, err)
	}

	// The replica did trail: it still holds the account enabled with
	// its first home.
	var home sql.NullString
	rdb, err := sql.Open("mysql", pair.ReplicaDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	if err := rdb.QueryRow("SELECT home_node FROM accounts WHERE id = ?", u.Account.ID).Scan(&home); err != nil {
		t.Fatal(err)
	}
	if home.String != "b1" {
		t.Fatalf("the replica holds home %q already; it did not trail and the test proves nothing", home.String)
	}

	// Mail lookups may trail, and are still answered by the replica.
	before := s.Health()[1].Reads
	if _, err := s.LookupAddress(ctx, "liuyang@egretair.example"); err != nil {
		t.Fatal(err)
	}
	if after := s.Health()[1].Reads; after != before+1 {
		t.Errorf("an address lookup was not answered by the replica: its reads went %d -> %d", before, after)
	}
}

// mariadbdPID answers the process that listens on addr.
func mariadbdPID(t *testing.T, addr string) int {
	t.Helper()
	_, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command("ss", "-ltnpH", "sport = :"+port).CombinedOutput()
	if err != nil {
		t.Fatalf("ss: %v %s", err, out)
	}
	m := regexp.MustCompile(`pid=(\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no process listens on %s: %s", addr, out)
	}
	pid, _ := strconv.Atoi(string(m[1]))
	return pid
}

// A primary that hangs with a transaction in flight (SIGSTOP: a frozen
// machine, a partition without resets) fails that transaction with
// ErrUnavailable once the read timeout passes, and applies none of it.
func TestReplicaHungPrimaryFailsTheWriteInFlight(t *testing.T) {
	pair := dirtest.StartPair(t)
	ctx := context.Background()
	s, err := directory.Open(ctx, pair.PrimaryURL()+"?readTimeout=2s&writeTimeout=2s",
		directory.WithReplicas(pair.ReplicaURL()))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	lc := &directory.Lifecycle{Store: s}
	unit, err := lc.CreateUnit(ctx, directory.NewUnit{Kind: directory.UnitOrg, Name: "机务部"})
	if err != nil {
		t.Fatal(err)
	}
	pid := mariadbdPID(t, pair.PrimaryAddr())
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) })

	start := time.Now()
	err = s.DB().WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Model(&directory.OrgUnit{}).Where("id = ?", unit.ID).
			Update("name", "机务工程部").Error; err != nil {
			return err
		}
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		// The next statement must meet a stopped server, not one
		// still answering: a COMMIT that reached the server before
		// it stopped would be applied once it runs again, its answer
		// lost, which is another case.
		waitStopped(t, pid)
		return directory.LogChange(tx, directory.EntityUnit, unit.ID, directory.OpUpdate, unit)
	})
	took := time.Since(start)
	if !errors.Is(err, directory.ErrUnavailable) {
		t.Errorf("a write in flight as the primary hung: got %v, want ErrUnavailable", err)
	}
	if took > 10*time.Second {
		t.Errorf("a write in flight as the primary hung took %s; the read timeout is 2 s", took)
	}
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitHealth(t, s, "primary back", func(h []directory.DatabaseHealth) bool { return h[0].Up })
	var got directory.OrgUnit
	if err := s.DB().Where("id = ?", unit.ID).Take(&got).Error; err != nil {
		t.Fatal(err)
	}
	if got.Name != "机务部" {
		t.Errorf("the unit is named %q after the failed write, want 机务部", got.Name)
	}
}

// Thirty users made at once through the lifecycle on MySQL all succeed
// with an account each, though their transactions deadlock each other
// in MariaDB: a transaction chosen as the deadlock's victim is run
// again.
func TestConcurrentCreationsAllSucceed(t *testing.T) {
	ctx := context.Background()
	s, err := directory.Open(ctx, "mysql://"+dirtest.NewMySQLDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetHomeBacks([]string{"b1", "b2"})
	lc := &directory.Lifecycle{Store: s, Domain: "egretair.example"}
	const n = 30
	var wg sync.WaitGroup
	ids := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u, err := lc.CreateUser(ctx, directory.NewUser{Login: fmt.Sprintf("crew%02d", i),
				DisplayName: "机组", Password: "a-long-password-123"})
			if err == nil {
				ids[i] = u.Account.ID
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, err := range errs {
		if err != nil {
			t.Errorf("creation %d of %d made at once: %v", i, n, err)
			continue
		}
		if seen[ids[i]] {
			t.Errorf("creation %d: account %s made twice", i, ids[i])
		}
		seen[ids[i]] = true
	}
	var accounts int64
	if err := s.DB().Model(&directory.Account{}).Count(&accounts).Error; err != nil {
		t.Fatal(err)
	}
	if accounts != n {
		t.Errorf("%d accounts after %d creations", accounts, n)
	}
}

// A MySQL URL that sets no read or write timeout gets 30 s of each, so
// a statement on a server that hangs fails, and a lock wait of 20 s, so
// a statement waiting on a lock is not taken for one; a URL that sets
// them keeps its own.
func TestParseURLBoundsStatementsOnAHungServer(t *testing.T) {
	_, dsn, err := directory.ParseURL("mysql://egret:pw@tcp(127.0.0.1:3306)/egret")
	if err != nil {
		t.Fatal(err)
	}
	c, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if c.ReadTimeout != 30*time.Second || c.WriteTimeout != 30*time.Second || c.Timeout != 2*time.Second {
		t.Errorf("default timeouts: dial %s, read %s, write %s; want 2s, 30s, 30s", c.Timeout, c.ReadTimeout, c.WriteTimeout)
	}
	for _, k := range []string{"innodb_lock_wait_timeout", "lock_wait_timeout"} {
		if got := c.Params[k]; got != "20" {
			t.Errorf("default %s: %q seconds, want 20, short of the read timeout", k, got)
		}
	}
	_, dsn, err = directory.ParseURL("mysql://egret:pw@tcp(127.0.0.1:3306)/egret" +
		"?readTimeout=2m&writeTimeout=90s&innodb_lock_wait_timeout=5")
	if err != nil {
		t.Fatal(err)
	}
	if c, err = mysql.ParseDSN(dsn); err != nil {
		t.Fatal(err)
	}
	if c.ReadTimeout != 2*time.Minute || c.WriteTimeout != 90*time.Second ||
		c.Params["innodb_lock_wait_timeout"] != "5" || c.Timeout != 2*time.Second {
		t.Errorf("timeouts the URL sets: dial %s, read %s, write %s, lock wait %q; want 2s, 2m, 90s, 5",
			c.Timeout, c.ReadTimeout, c.WriteTimeout, c.Params["innodb_lock_wait_timeout"])
	}
}

// A replica whose replication had stopped before the primary went down
// holds whatever it held then, however old: while the primary is down,
// sign-ins are refused as unavailable rather than checked against it,
// while a replica that was in step answers them.
func TestAccessReadsRefuseAReplicaThatStoppedBeforeTheOutage(t *testing.T) {
	pair := dirtest.StartPair(t)
	s := openPair(t, pair)
	ctx := context.Background()
	lc := &directory.Lifecycle{Store: s, Domain: "egretair.example"}
	const pw = "塔台 二号 频率"
	u, err := lc.CreateUser(ctx, directory.NewUser{Login: "sunli", DisplayName: "孙立", Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	pair.WaitCaughtUp(t)

	// The replica stops applying; then the account is disabled on the
	// primary, and the primary dies.
	if _, err := replicaRoot(t, pair).Exec("STOP SLAVE SQL_THREAD"); err != nil {
		t.Fatal(err)
	}
	waitHealth(t, s, "the stopped replica is behind", func(h []directory.DatabaseHealth) bool {
		return h[1].Behind
	})
	time.Sleep(3 * time.Second) // past the checks that saw it in step
	if _, err := lc.SetEnabled(ctx, u.ID, false); err != nil {
		t.Fatal(err)
	}
	pair.KillPrimary(t)
	waitHealth(t, s, "the primary is down", func(h []directory.DatabaseHealth) bool { return !h[0].Up })

	_, err = s.Authenticate(ctx, "sunli", pw)
	if !errors.Is(err, directory.ErrUnavailable) {
		t.Fatalf("sign-in to a disabled account from a replica stopped before the outage: %v, want ErrUnavailable", err)
	}
	// Mail lookups, which may trail, still answer from it.
	if _, err := s.LookupAddress(ctx, u.Account.Address); err != nil {
		t.Errorf("address lookup from the replica: %v", err)
	}
}

// A statement that waits on a table another session has locked (as one
// behind another node's migration does) gives up with a lock wait
// error before the read timeout, and the busy primary stays up: other
// writes go on.
func TestATableLockWaitLeavesThePrimaryUp(t *testing.T) {
	pair := dirtest.StartPair(t)
	s, err := directory.Open(context.Background(),
		pair.PrimaryURL()+"?readTimeout=6s&lock_wait_timeout=2",
		directory.WithReplicas(pair.ReplicaURL()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	lc := &directory.Lifecycle{Store: s, Domain: "egretair.example"}
	u, err := lc.CreateUser(ctx, directory.NewUser{Login: "zhoujie", DisplayName: "周杰"})
	if err != nil {
		t.Fatal(err)
	}

	c, err := mysql.ParseDSN(pair.PrimaryDSN())
	if err != nil {
		t.Fatal(err)
	}
	root, err := sql.Open("mysql", "root@tcp("+c.Addr+")/"+c.DBName)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	conn, err := root.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "LOCK TABLES accounts WRITE"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = s.SetHomeNode(ctx, u.Account.ID, "b1")
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("write on a locked table: %v after %s; want a lock wait error within the read timeout", err, time.Since(start))
	}
	if _, err := conn.ExecContext(ctx, "UNLOCK TABLES"); err != nil {
		t.Fatal(err)
	}
	if h := s.Health(); !h[0].Up {
		t.Fatalf("the primary was marked down by a lock wait: %+v", h[0])
	}
	if _, _, err := s.CreateAPIKey(ctx, "after-the-wait", []string{"directory:read"}); err != nil {
		t.Errorf("a write after the lock wait: %v", err)
	}
}

// waitStopped waits until the process pid is stopped by a signal.
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatal(err)
		}
		// The state follows the command name, which is in parentheses.
		if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) && b[i+2] == 'T' {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("mariadbd %d not stopped 5 s after SIGSTOP", pid)
}
