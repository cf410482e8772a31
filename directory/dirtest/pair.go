package dirtest

// A Pair is two private MariaDB servers made for one test: a primary and
// a replica that follows it by GTID replication. Each has its own data
// folder, socket and pid file under the test's temporary folder and
// listens on 127.0.0.1 only, at a free port. The tests kill and restart
// the primary to see what egret does while it is away.
//
// The servers come from the mariadb-server package (mariadbd and
// mariadb-install-db); scripts/test installs it. Without them the test
// fails, under CI and elsewhere, naming the package to install.

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
)

// Where the MariaDB programs are looked for first; PATH is tried next.
var (
	mariadbdPaths  = []string{"/usr/sbin/mariadbd", "mariadbd"}
	installDBPaths = []string{"/usr/bin/mariadb-install-db", "mariadb-install-db"}
)

// PairDatabase is the database the pair's DSNs name.
const PairDatabase = "egret"

// Accounts on the primary, copied to the replica by replication: one for
// the replica to read the binary log, and the one the DSNs name. The
// latter holds no admin rights, so read_only binds it on the replica as
// it would bind egret there; it may read the replication state, which
// egret's health check does.
const (
	replUser     = "egret_repl"
	replPassword = "egret-repl-secret"
	appUser      = "egret"
	appPassword  = "egret-app-secret"
)

// Pair is a running primary and replica; see the file comment.
type Pair struct {
	t       testing.TB
	primary *server
	replica *server
}

// server is one private mariadbd.
type server struct {
	name    string
	dir     string
	port    int
	args    []string
	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	logPath string
}

// StartPair starts a primary and a replica for t and stops both when
// the test ends. The database PairDatabase exists on both, empty.
func StartPair(t testing.TB) *Pair {
	t.Helper()
	mariadbd := findProgram(t, mariadbdPaths)
	installDB := findProgram(t, installDBPaths)
	root := t.TempDir()

	p := &Pair{t: t}
	for i, name := range []string{"primary", "replica"} {
		s := &server{name: name, dir: filepath.Join(root, name), port: freePort(t)}
		s.logPath = filepath.Join(s.dir, "error.log")
		if err := os.MkdirAll(s.dir, 0o750); err != nil {
			t.Fatal(err)
		}
		install := exec.Command(installDB, "--no-defaults",
			"--datadir="+filepath.Join(s.dir, "data"), "--auth-root-authentication-method=normal",
			"--skip-test-db")
		if os.Geteuid() == 0 {
			install.Args = append(install.Args, "--user=root")
		}
		// Each server has a temporary folder of its own: two installs
		// at once (test packages run in parallel) in one /tmp remove
		// each other's temporary tables, whose names do not differ.
		tmp := filepath.Join(s.dir, "tmp")
		if err := os.MkdirAll(tmp, 0o750); err != nil {
			t.Fatal(err)
		}
		install.Env = append(os.Environ(), "TMPDIR="+tmp)
		if out, err := install.CombinedOutput(); err != nil {
			t.Fatalf("dirtest: mariadb-install-db for the %s: %v\n%s", name, err, out)
		}
		s.args = []string{mariadbd, "--no-defaults",
			"--datadir=" + filepath.Join(s.dir, "data"),
			"--socket=" + filepath.Join(s.dir, "mysqld.sock"),
			"--pid-file=" + filepath.Join(s.dir, "mysqld.pid"),
			"--log-error=" + s.logPath,
			"--tmpdir=" + tmp,
			"--bind-address=127.0.0.1", "--port=" + strconv.Itoa(s.port),
			"--server-id=" + strconv.Itoa(i+1),
			"--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M",
			"--skip-name-resolve", "--character-set-server=utf8mb4",
			"--collation-server=utf8mb4_bin",
		}
		if name == "primary" {
			s.args = append(s.args, "--log-bin=mariadb-bin", "--binlog-format=ROW")
		} else {
			s.args = append(s.args, "--read-only", "--relay-log=relay-bin",
				"--slave-net-timeout=5")
		}
		if os.Geteuid() == 0 {
			s.args = append(s.args, "--user=root")
		}
		if name == "primary" {
			p.primary = s
		} else {
			p.replica = s
		}
	}
	t.Cleanup(p.stop)

	ctx := context.Background()
	for _, s := range []*server{p.primary, p.replica} {
		if err := s.start(); err != nil {
			t.Fatalf("dirtest: start the %s: %v", s.name, err)
		}
	}
	for _, s := range []*server{p.primary, p.replica} {
		if err := s.waitUp(ctx, 60*time.Second); err != nil {
			t.Fatalf("dirtest: the %s did not come up: %v\n%s", s.name, err, s.tail())
		}
	}

	// The accounts are made on the primary and reach the replica by
	// replication; the replica starts from the same empty state.
	p.exec(t, p.primary,
		"CREATE USER '"+replUser+"'@'127.0.0.1' IDENTIFIED BY '"+replPassword+"'",
		"GRANT REPLICATION SLAVE ON *.* TO '"+replUser+"'@'127.0.0.1'",
		"CREATE USER '"+appUser+"'@'127.0.0.1' IDENTIFIED BY '"+appPassword+"'",
		"GRANT ALL ON "+PairDatabase+".* TO '"+appUser+"'@'127.0.0.1'",
		"GRANT SLAVE MONITOR ON *.* TO '"+appUser+"'@'127.0.0.1'")
	p.exec(t, p.replica,
		"SET GLOBAL gtid_slave_pos = ''",
		fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, "+
			"MASTER_USER='%s', MASTER_PASSWORD='%s', MASTER_USE_GTID=slave_pos, "+
			"MASTER_CONNECT_RETRY=1", p.primary.port, replUser, replPassword),
		"START SLAVE")
	p.exec(t, p.primary, "CREATE DATABASE "+PairDatabase+" CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
	p.WaitCaughtUp(t)
	return p
}

// findProgram answers the first of paths that exists, or fails t.
func findProgram(t testing.TB, paths []string) string {
	t.Helper()
	for _, p := range paths {
		if filepath.IsAbs(p) {
			if _, err := os.Stat(p); err == nil {
				return p
			}
			continue
		}
		if found, err := exec.LookPath(p); err == nil {
			return found
		}
	}
	t.Fatalf("dirtest: %s not found: install the mariadb-server package (scripts/test does)", paths[0])
	return ""
}

// freePort answers a TCP port on 127.0.0.1 that nothing listens on now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// PrimaryDSN answers a go-sql-driver DSN for PairDatabase on the
// primary, as an account without admin rights.
func (p *Pair) PrimaryDSN() string { return p.primary.dsn(PairDatabase) }

// ReplicaDSN answers a go-sql-driver DSN for PairDatabase on the
// replica, as the same account, which read_only holds to reads.
func (p *Pair) ReplicaDSN() string { return p.replica.dsn(PairDatabase) }

// PrimaryURL and ReplicaURL are the DSNs as egret's database URLs.
func (p *Pair) PrimaryURL() string { return "mysql://" + p.PrimaryDSN() }

// ReplicaURL is the replica's database URL (see PrimaryURL).
func (p *Pair) ReplicaURL() string { return "mysql://" + p.ReplicaDSN() }

// PrimaryAddr answers the primary's host:port.
func (p *Pair) PrimaryAddr() string { return p.primary.addr() }

// KillPrimary stops the primary with SIGKILL, as a crash would, and
// waits until it is gone.
func (p *Pair) KillPrimary(t testing.TB) {
	t.Helper()
	if err := p.primary.kill(); err != nil {
		t.Fatalf("dirtest: kill the primary: %v", err)
	}
}

// StartPrimary starts the primary again on its own data and port, and
// waits until it answers. The replica reconnects by itself.
func (p *Pair) StartPrimary(t testing.TB) {
	t.Helper()
	if err := p.primary.start(); err != nil {
		t.Fatalf("dirtest: restart the primary: %v", err)
	}
	if err := p.primary.waitUp(context.Background(), 60*time.Second); err != nil {
		t.Fatalf("dirtest: the primary did not come back: %v\n%s", err, p.primary.tail())
	}
}

// WaitCaughtUp waits until the replica has applied everything the
// primary has written, and fails t after 30 seconds.
func (p *Pair) WaitCaughtUp(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	prim, err := sql.Open("mysql", p.primary.socketDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer prim.Close()
	var pos string
	if err := prim.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&pos); err != nil {
		t.Fatalf("dirtest: primary's position: %v", err)
	}
	rep, err := sql.Open("mysql", p.replica.socketDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Close()
	var ok sql.NullInt64
	err = rep.QueryRowContext(ctx, "SELECT MASTER_GTID_WAIT(?, 30)", pos).Scan(&ok)
	if err != nil || !ok.Valid || ok.Int64 != 0 {
		t.Fatalf("dirtest: the replica did not reach %q: %v (%v)\n%s", pos, err, ok, p.replica.tail())
	}
}

// exec runs statements on s as root over its socket, failing t on the
// first error.
func (p *Pair) exec(t testing.TB, s *server, stmts ...string) {
	t.Helper()
	db, err := sql.Open("mysql", s.socketDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("dirtest: %s: %s: %v", s.name, q, err)
		}
	}
}

// stop kills both servers, those this pair started and only those.
func (p *Pair) stop() {
	for _, s := range []*server{p.primary, p.replica} {
		if s != nil {
			s.kill()
		}
	}
}

func (s *server) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// dsn answers a DSN for database db as the test account over TCP.
func (s *server) dsn(db string) string {
	return appUser + ":" + appPassword + "@tcp(" + s.addr() + ")/" + db
}

// socketDSN answers a DSN as root over the socket, which works before
// the account root@127.0.0.1 is made.
func (s *server) socketDSN() string {
	return "root@unix(" + filepath.Join(s.dir, "mysqld.sock") + ")/"
}

// start runs mariadbd; it does not wait for it to answer.
func (s *server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("already running")
	}
	cmd := exec.Command(s.args[0], s.args[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	go func(exited chan struct{}) {
		cmd.Wait()
		close(exited)
	}(s.exited)
	return nil
}

// kill sends SIGKILL to the mariadbd this server started, if running,
// and waits for it to end.
func (s *server) kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return nil
	}
	if err := s.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	<-s.exited
	s.cmd = nil
	return nil
}

// waitUp waits until s takes connections, through its socket (root
// over TCP may not exist yet).
func (s *server) waitUp(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	db, err := sql.Open("mysql", s.socketDSN())
	if err != nil {
		return err
	}
	defer db.Close()
	for {
		s.mu.Lock()
		exited := s.exited
		s.mu.Unlock()
		select {
		case <-exited:
			return errors.New("mariadbd exited")
		default:
		}
		if err = db.PingContext(ctx); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// tail answers the end of the server's error log, for failure reports.
func (s *server) tail() string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(bytes.TrimSpace(b))
}
