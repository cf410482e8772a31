package integration

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestClusterWebMailboxThroughTheFront signs in to the web mailbox on
// the front for an account homed on the second back, and reads there
// the mail the back holds: the list and the message are relayed. The
// back's own /mail/ refuses a browser, session cookie and all. Once
// the back is killed, the front answers the mailbox pages with a 503
// page at once, and sign-in still works.
func TestClusterWebMailboxThroughTheFront(t *testing.T) {
	c := startCluster(t, 2, "EGRET_CLUSTER_BREAKER_INTERVAL=300ms")
	pw := randomString(t, 20)
	addr := createUser(t, c.front, "huangmin", pw, 0)
	// The postmaster mailbox the front made at its start is on b1.
	if h := homeOf(t, c.dbURL, addr); h != "b2" {
		t.Fatalf("home of %s: %q, want b2", addr, h)
	}
	subject := "Roster for the night shift " + randomString(t, 6)
	sendTo(t, c.front, addr, subject)
	waitInbox(t, c.front, "huangmin", pw, 1, 10*time.Second)

	web := webClient(t, c.front, "huangmin", pw)
	base := "http://" + c.front.httpAddr
	status, page := webGet(t, web, base+"/mail/")
	if status != http.StatusOK || !strings.Contains(page, subject) {
		t.Fatalf("the front's /mail/: %d, want 200 listing %q:\n%s", status, subject, page)
	}
	status, page = webGet(t, web, base+"/mail/read?box=INBOX&uid=1")
	if status != http.StatusOK || !strings.Contains(page, subject) || !strings.Contains(page, "Roster.") {
		t.Fatalf("the front's /mail/read: %d, want 200 with the message:\n%s", status, page)
	}

	// The back serves its mailbox pages to its fronts only.
	fu, _ := url.Parse(base)
	b2 := "http://" + c.backs[1].httpAddr
	bu, _ := url.Parse(b2)
	web.Jar.SetCookies(bu, web.Jar.Cookies(fu))
	if status, page := webGet(t, web, b2+"/mail/"); status != http.StatusForbidden || strings.Contains(page, subject) {
		t.Fatalf("the back's /mail/ without the secret: %d, want 403:\n%s", status, page)
	}

	c.backs[1].cmd.Process.Kill()
	<-c.backs[1].exited
	start := time.Now()
	status, page = webGet(t, web, base+"/mail/")
	if status != http.StatusServiceUnavailable || !strings.Contains(page, "not available") {
		t.Fatalf("the front's /mail/ with the back down: %d, want 503 saying so:\n%s", status, page)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the 503 took %v, want it at once", took)
	}
	waitBreaker(t, c.front, "b2", "open", 5*time.Second)
	start = time.Now()
	status, _ = webGet(t, web, base+"/mail/")
	if status != http.StatusServiceUnavailable || time.Since(start) > time.Second {
		t.Fatalf("the front's /mail/ with the breaker open: %d after %v, want 503 at once",
			status, time.Since(start))
	}
	if status, page := webGet(t, web, base+"/mail/login"); status != http.StatusOK || !strings.Contains(page, `name="pre"`) {
		t.Fatalf("the front's sign-in page with a back down: %d:\n%s", status, page)
	}
}

// webGet fetches a page and answers its status and text.
func webGet(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}
