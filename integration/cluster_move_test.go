package integration

import (
	"crypto/sha256"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// TestMoveHomeCarriesMailToAnotherBack homes an account on b1, gives
// it three messages with flags, moves it to b2 with egret account
// move-home run as the front, and reads it through the front again:
// the same messages, bytes and flags, and new mail lands on b2.
func TestMoveHomeCarriesMailToAnotherBack(t *testing.T) {
	c := startCluster(t, 2)
	pw := randomString(t, 20)
	addr := createUser(t, c.front, "gaojing", pw, 0)
	setHome(t, c.dbURL, addr, "b1")
	for i := range 3 {
		sendTo(t, c.front, addr, fmt.Sprintf("roster %d", i+1))
	}
	waitInbox(t, c.front, "gaojing", pw, 3, 10*time.Second)

	// Three kinds of flags, one per message.
	cl := frontSession(t, c.front, "gaojing", pw)
	if _, err := cl.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	for i, f := range []imap.Flag{imap.FlagSeen, imap.FlagFlagged, imap.FlagAnswered} {
		err := cl.Store(imap.SeqSetNum(uint32(i+1)), &imap.StoreFlags{
			Op: imap.StoreFlagsAdd, Flags: []imap.Flag{f}}, nil).Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	cl.Logout().Wait()
	before := inboxDigest(t, c.front, "gaojing", pw)

	cmd := exec.Command(egretBin, "account", "move-home", "--remove-old", addr, "b2")
	cmd.Env = c.front.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("move-home: %v\n%s", err, out)
	}
	t.Logf("move-home: %s", strings.TrimSpace(string(out)))
	if h := homeOf(t, c.dbURL, addr); h != "b2" {
		t.Fatalf("home after the move: %q, want b2", h)
	}
	if !strings.Contains(string(out), "removed the old copy on b1") {
		t.Fatalf("move-home did not remove the old copy:\n%s", out)
	}

	after := inboxDigest(t, c.front, "gaojing", pw)
	if !slices.Equal(before, after) {
		t.Fatalf("INBOX through the front after the move:\n%s\nwant:\n%s",
			strings.Join(after, "\n"), strings.Join(before, "\n"))
	}
	sendTo(t, c.front, addr, "after the move")
	waitInbox(t, c.front, "gaojing", pw, 4, 10*time.Second)

	// A second move to where it is is refused, and changes nothing.
	cmd = exec.Command(egretBin, "account", "move-home", addr, "b2")
	cmd.Env = c.front.env
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("move-home to the home it has: no error\n%s", out)
	}
}

// frontSession signs in through the node's IMAP.
func frontSession(t *testing.T, n *node, user, password string) *imapclient.Client {
	t.Helper()
	cl, err := imapclient.DialInsecure(n.imapAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	if err := cl.Login(user, password).Wait(); err != nil {
		t.Fatal(err)
	}
	return cl
}

// inboxDigest answers each INBOX message, in order, as its flags and
// the SHA-256 of its bytes.
func inboxDigest(t *testing.T, n *node, user, password string) []string {
	t.Helper()
	cl := frontSession(t, n, user, password)
	defer func() { cl.Logout().Wait() }()
	if _, err := cl.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := cl.Fetch(imap.SeqSetNum(1, 2, 3), &imap.FetchOptions{
		Flags:       true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		var flags []string
		for _, f := range m.Flags {
			if f != `\Recent` {
				flags = append(flags, string(f))
			}
		}
		slices.Sort(flags)
		sum := sha256.Sum256(m.FindBodySection(&imap.FetchItemBodySection{}))
		out = append(out, fmt.Sprintf("%x %s", sum[:8], strings.Join(flags, " ")))
	}
	if len(out) != 3 {
		t.Fatalf("INBOX of %s: %d messages, want 3", user, len(out))
	}
	return out
}
