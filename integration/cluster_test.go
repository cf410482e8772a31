package integration

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/egretair/egret/directory/dirtest"
)

// TestClusterHoldsMailForADeadBack runs one front and two backs as
// separate processes on one MariaDB database. Mail, IMAP and mailbox
// facts go through the front only, and a steady load of SMTP sends and
// IMAP sign-ins to both users runs throughout. One back is killed: its
// user's IMAP login answers NO [UNAVAILABLE] and its facts 503 while
// the other user's IMAP and facts work, and mail for it is accepted and
// held; once the back is started again on the same data folder, its
// breaker closes and the held mail arrives, each message once.
func TestClusterHoldsMailForADeadBack(t *testing.T) {
	c := startCluster(t, 2, "EGRET_CLUSTER_BREAKER_INTERVAL=300ms", "EGRET_QUEUE_RETRY_SCHEDULE=1s")
	dbURL, front, b2 := c.dbURL, c.front, c.backs[1]

	// The directory comes in through the front; two people get
	// passwords and a home on each back.
	snap := loadSnapshot(t, filepath.Join(repoRoot, "testdata/oa/ekp-small.json"))
	importSnapshot(t, front, viaAPI, snap)
	p1 := snap.pickPerson(t, "for the first back", func(ekpElement) bool { return true })
	p2 := snap.pickPerson(t, "for the second back", func(e ekpElement) bool { return e.ID != p1.ID })
	addr1, addr2 := p1.address(mailDomain), p2.address(mailDomain)
	pw1, pw2 := randomString(t, 20), randomString(t, 20)
	setPassword(t, front, p1, addr1, pw1)
	setPassword(t, front, p2, addr2, pw2)
	setHome(t, dbURL, addr1, "b1")
	setHome(t, dbURL, addr2, "b2")

	sendTo(t, front, addr1, "first for one")
	sendTo(t, front, addr2, "first for two")
	waitInbox(t, front, p1.LoginName, pw1, 1, 10*time.Second)
	waitInbox(t, front, p2.LoginName, pw2, 1, 10*time.Second)

	// The front's facts are the backs' mailboxes.
	for addr, subject := range map[string]string{addr1: "first for one", addr2: "first for two"} {
		status, _, body := mailboxFacts(t, front, addr)
		mb, _ := body["mailbox"].(map[string]any)
		latest, _ := mb["latest"].([]any)
		if status != http.StatusOK || mb["total"] != float64(1) || len(latest) != 1 {
			t.Fatalf("facts of %s through the front: %d %v; want 200 with 1 message", addr, status, body)
		}
		if got := latest[0].(map[string]any)["subject"]; got != subject {
			t.Fatalf("facts of %s: latest subject %v, want %q", addr, got, subject)
		}
	}

	ld := startLoad(t, front, []loadUser{
		{addr1, p1.LoginName, pw1},
		{addr2, p2.LoginName, pw2},
	}, 100*time.Millisecond)
	time.Sleep(time.Second)

	// The second back dies.
	b2.cmd.Process.Kill()
	<-b2.exited
	killed := time.Now()
	for {
		_, err := inboxCount(front.imapAddr, p2.LoginName, pw2)
		if err != nil && strings.Contains(err.Error(), "UNAVAILABLE") {
			break
		}
		if time.Since(killed) > 5*time.Second {
			t.Fatalf("5 s after the back died, its user's login answers %v, want NO [UNAVAILABLE]", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("login refused as unavailable %v after the kill", time.Since(killed).Round(time.Millisecond))
	for {
		status, retry, body := mailboxFacts(t, front, addr2)
		if status == http.StatusServiceUnavailable {
			if retry == "" || body["error"] == nil {
				t.Fatalf("facts of the dead back's user: Retry-After %q, body %v; want both", retry, body)
			}
			break
		}
		if time.Since(killed) > 5*time.Second {
			t.Fatalf("5 s after the back died, its user's facts answer %d %v, want 503", status, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if status, _, body := mailboxFacts(t, front, addr1); status != http.StatusOK {
		t.Fatalf("facts of the other back's user: %d %v, want 200", status, body)
	}
	if _, err := inboxCount(front.imapAddr, p1.LoginName, pw1); err != nil {
		t.Fatalf("the other back's user: %v", err)
	}
	sendTo(t, front, addr2, "held for two")
	waitBreaker(t, front, "b2", "open", 5*time.Second)
	if status, _, body := mailboxFacts(t, front, addr2); status != http.StatusServiceUnavailable {
		t.Fatalf("facts of the dead back's user with its breaker open: %d %v, want 503", status, body)
	}
	if _, err := inboxCount(front.imapAddr, p1.LoginName, pw1); err != nil {
		t.Fatalf("the other back's user with a breaker open: %v", err)
	}
	if q, _ := front.getJSON(t, "/heartbeat")["queue_size"].(float64); q < 1 {
		t.Fatalf("the front's queue holds %v messages, want at least the one for the dead back", q)
	}

	// The back comes back on its data folder; the held mail follows.
	time.Sleep(time.Second)
	b2 = relaunch(t, b2)
	back := time.Now()
	waitBreaker(t, front, "b2", "closed", 5*time.Second)
	t.Logf("breaker closed %v after the restart", time.Since(back).Round(time.Millisecond))
	restored := time.Now()
	time.Sleep(time.Second)
	ld.stopLoad()

	for _, f := range ld.imapFailures(0) {
		if !f.at.Before(killed) && !f.at.After(restored) {
			t.Errorf("the first back's user's IMAP failed %v after the kill: %v",
				f.at.Sub(killed).Round(time.Millisecond), f.err)
		}
	}
	ld.checkDelivered(t, front, 20*time.Second)
	got, err := readInbox(front.imapAddr, p2.LoginName, pw2, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 {
		t.Fatal("no load mail reached the second back's user")
	}
	status, _, body := mailboxFacts(t, front, addr2)
	mb, _ := body["mailbox"].(map[string]any)
	if status != http.StatusOK || mb["total"] != float64(len(got)+2) {
		t.Fatalf("facts of %s after the restart: %d %v; want 200 with %d messages", addr2, status, body, len(got)+2)
	}
}

// cluster is one front and its backs, each a process of its own, on
// one MariaDB database.
type cluster struct {
	dbURL string
	front *node
	backs []*node
}

// startCluster starts n backs, named b1, b2 and so on, and one front
// named f1 over them. frontEnv adds EGRET_ settings to the front's.
func startCluster(t testing.TB, n int, frontEnv ...string) *cluster {
	t.Helper()
	c := &cluster{dbURL: dirtest.URL(t, "mysql")}
	secret := randomString(t, 24)
	lmtp := freePorts(t, n)
	var spec []string
	for i := range n {
		name := fmt.Sprintf("b%d", i+1)
		b := startNodeEnv(t, c.dbURL, "EGRET_NODE_ROLE=back", "EGRET_NODE_NAME="+name,
			"EGRET_LMTP_ADDR="+lmtp[i], "EGRET_CLUSTER_PROXY_SECRET="+secret)
		c.backs = append(c.backs, b)
		spec = append(spec, fmt.Sprintf("%s=%s/%s/%s", name, b.imapAddr, lmtp[i], b.httpAddr))
	}
	env := append([]string{"EGRET_NODE_ROLE=front", "EGRET_NODE_NAME=f1",
		"EGRET_CLUSTER_PROXY_SECRET=" + secret,
		"EGRET_CLUSTER_BACKS=" + strings.Join(spec, ",")}, frontEnv...)
	c.front = startNodeEnv(t, c.dbURL, env...)
	return c
}

// setHome records an account's home back in the shared database.
func setHome(t *testing.T, dbURL, address, back string) {
	t.Helper()
	db, err := sql.Open("mysql", strings.TrimPrefix(dbURL, "mysql://"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec("UPDATE accounts SET home_node = ? WHERE address = ?", back, address)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("home of %s: %d accounts changed, want 1", address, n)
	}
}

// sendTo sends one message over SMTP to the node and requires a 250.
func sendTo(t testing.TB, n *node, to, subject string) {
	t.Helper()
	c, err := smtp.Dial(n.smtpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := fmt.Sprintf("From: <ops@remote.example>\r\nTo: <%s>\r\nSubject: %s\r\n"+
		"Message-ID: <%s@remote.example>\r\n\r\nRoster.\r\n", to, subject, randomString(t, 12))
	if err := c.SendMail("ops@remote.example", []string{to}, strings.NewReader(msg)); err != nil {
		t.Fatalf("mail to %s: %v", to, err)
	}
	c.Quit()
}

// waitInbox waits until the user's INBOX, read through the node, holds
// want messages.
func waitInbox(t testing.TB, n *node, user, password string, want uint32, limit time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		got, err := inboxCount(n.imapAddr, user, password)
		if err == nil && got == want {
			return
		}
		if time.Since(start) > limit {
			t.Fatalf("INBOX of %s after %v: %d messages, %v; want %d", user, limit, got, err, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitBreaker waits until the front's heartbeat shows the back's
// breaker in state.
func waitBreaker(t *testing.T, front *node, back, state string, limit time.Duration) {
	t.Helper()
	start := time.Now()
	var last string
	for time.Since(start) < limit {
		resp, err := http.Get("http://" + front.httpAddr + "/heartbeat")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var hb struct {
				Breakers []struct{ Node, State string }
			}
			json.Unmarshal(body, &hb)
			for _, b := range hb.Breakers {
				if b.Node == back {
					last = b.State
				}
			}
			if last == state {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("breaker for %s is %q after %v, want %s", back, last, limit, state)
}

// TestFrontRecordsTheLeastHomedBack checks that an account with no
// recorded home, as an older version left them, gets one on its first
// use through a front, a sign-in for one account and a delivery for
// another, and that each goes to the back with the fewest accounts:
// the first to b1 on the tie, the second to b2.
func TestFrontRecordsTheLeastHomedBack(t *testing.T) {
	c := startCluster(t, 2)
	pw1, pw2 := randomString(t, 20), randomString(t, 20)
	addr1 := createUser(t, c.front, "huangmin", pw1, 0)
	addr2 := createUser(t, c.front, "zhoujie", pw2, 0)
	clearHomes(t, c.dbURL)
	for _, a := range []string{addr1, addr2} {
		if h := homeOf(t, c.dbURL, a); h != "" {
			t.Fatalf("home of %s before any use: %q, want none", a, h)
		}
	}

	if _, err := inboxCount(c.front.imapAddr, "huangmin", pw1); err != nil {
		t.Fatal(err)
	}
	sendTo(t, c.front, addr2, "first for zhoujie")
	waitInbox(t, c.front, "zhoujie", pw2, 1, 10*time.Second)
	for a, want := range map[string]string{addr1: "b1", addr2: "b2"} {
		if h := homeOf(t, c.dbURL, a); h != want {
			t.Errorf("home of %s after its first use: %q, want %s", a, h, want)
		}
	}
}

// homeOf answers the home_node recorded for the account at address,
// "" for none.
func homeOf(t *testing.T, dbURL, address string) string {
	t.Helper()
	db, err := sql.Open("mysql", strings.TrimPrefix(dbURL, "mysql://"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var home sql.NullString
	err = db.QueryRow("SELECT home_node FROM accounts WHERE address = ?", address).Scan(&home)
	if err != nil {
		t.Fatalf("home of %s: %v", address, err)
	}
	return home.String
}

// clearHomes forgets every account's home, as before homes were
// recorded at creation.
func clearHomes(t *testing.T, dbURL string) {
	t.Helper()
	db, err := sql.Open("mysql", strings.TrimPrefix(dbURL, "mysql://"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("UPDATE accounts SET home_node = NULL"); err != nil {
		t.Fatal(err)
	}
}
