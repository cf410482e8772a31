package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/smtp"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/egretair/egret/directory/dirtest"
)

// TestServiceRestartedAfterPanic makes the IMAP service of a running
// node panic and checks that it is restarted within seconds, that the
// restart is in the log, the heartbeat and `egret status`, and that an
// SMTP session opened before the panic carries on undisturbed.
func TestServiceRestartedAfterPanic(t *testing.T) {
	n := startNodeEnv(t, dirtest.URL(t, "sqlite"), "EGRET_TEST_FAIL_SERVICE=imap")
	const password = "correct horse battery"
	addr := createUser(t, n, "ops.drill", password, 0)
	imapLogin(t, n.imapAddr, "ops.drill", password)

	// An SMTP transaction begun before the panic, finished after it.
	sc, err := smtp.Dial(n.smtpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if err := sc.Hello("drill.test"); err != nil {
		t.Fatal(err)
	}
	if err := sc.Mail("sender@outside.test"); err != nil {
		t.Fatal(err)
	}

	if err := n.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	restart := waitLog(t, n.logPath, 5*time.Second, func(m map[string]any) bool {
		return m["msg"] == "service restarted" && m["service"] == "imap"
	})
	if cause, _ := restart["cause"].(string); !strings.Contains(cause, "panic") {
		t.Errorf("restart logged with cause %q, want the panic", cause)
	}
	if restart["time"] == nil || restart["node"] == nil {
		t.Errorf("restart log line lacks its time or node: %v", restart)
	}

	if err := sc.Rcpt(addr); err != nil {
		t.Fatalf("RCPT after the IMAP restart: %v", err)
	}
	w, err := sc.Data()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(w, "From: sender@outside.test\r\nTo: %s\r\nSubject: after the drill\r\n\r\nstill here\r\n", addr)
	if err := w.Close(); err != nil {
		t.Fatalf("DATA after the IMAP restart: %v", err)
	}
	sc.Quit()

	// The restarted IMAP service serves, and the mail is there.
	deadline := time.Now().Add(10 * time.Second)
	for {
		count, err := inboxCount(n.imapAddr, "ops.drill", password)
		if err == nil && count == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("INBOX after the restart: %d messages (%v), want the one sent across it", count, err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	hb := n.getJSONAt(t, "/heartbeat")
	restarts := map[string]float64{}
	for _, s := range hb["services"].([]any) {
		s := s.(map[string]any)
		restarts[s["name"].(string)] = s["restarts"].(float64)
		if s["state"] != "running" {
			t.Errorf("heartbeat: service %v is %v, want running", s["name"], s["state"])
		}
	}
	for name, want := range map[string]float64{"imap": 1, "smtp": 0, "http": 0, "lmtp": 0, "queue": 0} {
		if got, ok := restarts[name]; !ok || got != want {
			t.Errorf("heartbeat: %s restarted %v times (listed: %v), want %v", name, got, ok, want)
		}
	}

	out, err := n.egret("", "status")
	if err != nil {
		t.Fatal(err)
	}
	if !statusLine(out, "imap", "running", "1") || !statusLine(out, "smtp", "running", "0") {
		t.Errorf("egret status does not show imap restarted once and smtp never:\n%s", out)
	}
}

// imapLogin logs in over plain IMAP and out again, failing the test if
// the server refuses.
func imapLogin(t *testing.T, addr, user, password string) {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, password).Wait(); err != nil {
		t.Fatalf("IMAP LOGIN %s at %s: %v", user, addr, err)
	}
	c.Logout().Wait()
}

// inboxCount logs in and answers how many messages the INBOX holds.
func inboxCount(addr, user, password string) (uint32, error) {
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if err := c.Login(user, password).Wait(); err != nil {
		return 0, fmt.Errorf("LOGIN %s: %w", user, err)
	}
	sel, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return 0, fmt.Errorf("SELECT INBOX of %s: %w", user, err)
	}
	c.Logout().Wait()
	return sel.NumMessages, nil
}

// waitLog waits for a JSON log line that match accepts and answers it.
func waitLog(t *testing.T, path string, limit time.Duration, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil && match(m) {
				f.Close()
				return m
			}
		}
		f.Close()
		if time.Now().After(deadline) {
			t.Fatalf("no such log line within %v; log:\n%s", limit, tail(path, 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// statusLine reports whether `egret status` has a service line with
// these words.
func statusLine(out string, words ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= len(words) && strings.Join(f[:len(words)], " ") == strings.Join(words, " ") {
			return true
		}
	}
	return false
}

// getJSONAt GETs a path on the node's HTTP listener
// and decodes the JSON object it answers, whatever the status.
func (n *node) getJSONAt(t *testing.T, path string) map[string]any {
	t.Helper()
	_, body, err := n.api("GET", path, nil)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("GET %s: not a JSON object: %v\n%s", path, err, body)
	}
	return v
}
