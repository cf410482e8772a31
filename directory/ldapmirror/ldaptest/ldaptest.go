// Package ldaptest runs a private OpenLDAP slapd for tests: its own
// configuration, database and port on 127.0.0.1, started by the test and
// killed by its process id when the test ends. The system's slapd
// service, if any, is never touched.
//
// The server has the mdb backend with one suffix, a root DN with a
// password, the core, cosine and inetorgperson schemas from
// /etc/ldap/schema, and the argon2 password module, so a userPassword of
// "{ARGON2}$argon2id$..." verifies on bind.
//
// slapd is found on PATH or at /usr/sbin/slapd. Where it is missing, the
// test fails under CI (CI=true), since a missing server there is a broken
// set-up, and is skipped with that reason elsewhere; scripts/test
// installs it from Debian's packages.
package ldaptest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Base is the suffix every test server holds.
const Base = "dc=egret,dc=test"

// RootDN and RootPassword are the server's administrator.
const (
	RootDN       = "cn=admin," + Base
	RootPassword = "test-root-secret"
)

// Server is one running slapd.
type Server struct {
	// URL is "ldap://127.0.0.1:PORT".
	URL  string
	Port int
	dir  string
	bin  string
	cmd  *exec.Cmd
	done chan struct{}
}

// Binary answers the path of slapd, or fails or skips t as the package
// comment says.
func Binary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("slapd"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/slapd"); err == nil {
		return "/usr/sbin/slapd"
	}
	if os.Getenv("CI") != "" {
		t.Fatal("slapd is not installed under CI; run the tests with scripts/test")
	}
	t.Skip("slapd is not installed (apt-get install slapd ldap-utils); scripts/test installs it")
	return ""
}

// Tool answers the path of an OpenLDAP client tool (ldapsearch,
// ldapadd, ldapwhoami), failing or skipping t as Binary does.
func Tool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed under CI; run the tests with scripts/test", name)
	}
	t.Skipf("%s is not installed (apt-get install ldap-utils); scripts/test installs it", name)
	return ""
}

// Start runs a new, empty server that lives as long as the test. The
// suffix entry itself is not made: the mirror makes it.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{bin: Binary(t), dir: t.TempDir()}
	if err := os.Mkdir(filepath.Join(s.dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "slapd.conf"), []byte(s.config()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.start(0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// config writes slapd.conf(5) for this server. dbnosync trades the
// durability of the test database, which nobody keeps, for speed.
func (s *Server) config() string {
	lines := []string{
		"include /etc/ldap/schema/core.schema",
		"include /etc/ldap/schema/cosine.schema",
		"include /etc/ldap/schema/inetorgperson.schema",
		"modulepath /usr/lib/ldap",
		"moduleload back_mdb",
		"moduleload argon2",
		"pidfile " + filepath.Join(s.dir, "slapd.pid"),
		"argsfile " + filepath.Join(s.dir, "slapd.args"),
		"sizelimit unlimited",
		"database mdb",
		"maxsize 2147483648",
		"dbnosync",
		`suffix "` + Base + `"`,
		`rootdn "` + RootDN + `"`,
		"rootpw " + RootPassword,
		"directory " + filepath.Join(s.dir, "data"),
		"index objectClass eq",
		"index uniqueIdentifier eq",
		"index uid eq",
		"access to attrs=userPassword by self write by anonymous auth by * none",
		"access to * by * read",
	}
	return strings.Join(lines, "\n") + "\n"
}

// start runs slapd in the foreground (-d 0), on port, or on a free one
// when port is 0, and waits until it accepts connections.
func (s *Server) start(port int) error {
	if port == 0 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	s.Port = port
	s.URL = "ldap://127.0.0.1:" + strconv.Itoa(port)
	logf, err := os.OpenFile(filepath.Join(s.dir, "slapd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, "-d", "0", "-f", filepath.Join(s.dir, "slapd.conf"),
		"-h", s.URL+"/")
	cmd.Stdout = logf
	cmd.Stderr = logf
	// Its own process group, so a terminal's ^C reaches the test and
	// not the server halfway through its shutdown.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("ldaptest: start slapd: %w", err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func() {
		cmd.Wait()
		logf.Close()
		close(s.done)
	}()

	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("ldaptest: slapd exited at start: %s", s.logTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
	s.Stop()
	return fmt.Errorf("ldaptest: slapd did not listen within 15 s: %s", s.logTail())
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "slapd.log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// Stop ends the server (SIGTERM, then SIGKILL after ten seconds) and
// waits for it. Its database stays until the test ends, for Restart.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// Restart starts a stopped server again on the same port with the same
// database.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if err := s.start(s.Port); err != nil {
		t.Fatal(err)
	}
}
