package integration

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
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

// TestMoveHomeCarriesMailDeliveredDuringTheMove fills an account on b1
// with a few hundred messages in two mailboxes and moves it to b2 with
// --remove-old while a sender delivers to it through the front every
// 50 ms, and while a session opened on b1 before the move flags a
// message just after the switch. Once the sender stops and the front's
// queue is empty, every message the front acknowledged is in the INBOX
// read through the front exactly once, the filled messages are all
// there with the flag, and b1 holds no message of the account.
func TestMoveHomeCarriesMailDeliveredDuringTheMove(t *testing.T) {
	const inbox, archive = 300, 100
	c := startCluster(t, 2)
	pw := randomString(t, 20)
	addr := createUser(t, c.front, "zhanglan", pw, 0)
	setHome(t, c.dbURL, addr, "b1")

	cl := frontSession(t, c.front, "zhanglan", pw)
	if err := cl.Create("Archive", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	filled := time.Now()
	for i := range inbox + archive {
		box := "INBOX"
		if i >= inbox {
			box = "Archive"
		}
		msg := fmt.Sprintf("From: <ops@remote.example>\r\nTo: <%s>\r\nSubject: filed %d\r\n"+
			"Message-ID: <filed-%d@remote.example>\r\n\r\nFiled before the move, %d.\r\n",
			addr, i+1, i+1, i+1)
		app := cl.Append(box, int64(len(msg)), nil)
		if _, err := app.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		if err := app.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := app.Wait(); err != nil {
			t.Fatalf("append %d: %v", i+1, err)
		}
	}
	t.Logf("%d messages filed on b1 in %v", inbox+archive, time.Since(filled).Round(time.Millisecond))
	// This session stays on b1 through the move, as a client that
	// does not reconnect would.
	if _, err := cl.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}

	ld := startLoad(t, c.front, []loadUser{{addr, "zhanglan", pw}}, 50*time.Millisecond)
	time.Sleep(time.Second)

	var out bytes.Buffer
	cmd := exec.Command(egretBin, "account", "move-home", "--remove-old", addr, "b2")
	cmd.Env = c.front.env
	cmd.Stdout, cmd.Stderr = &out, &out
	started := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	// Just after the switch, the session still on b1 flags the first
	// message; the command carries the flag in its last pass.
	flagged := false
	for !flagged {
		select {
		case err := <-done:
			t.Fatalf("move-home ended before the switch was seen: %v\n%s", err, out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if homeOf(t, c.dbURL, addr) == "b2" {
			err := cl.Store(imap.SeqSetNum(1), &imap.StoreFlags{
				Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close()
			if err != nil {
				t.Fatalf("flag on b1 after the switch: %v", err)
			}
			flagged = true
		}
	}
	t.Logf("home switched %v into the move", time.Since(started).Round(time.Millisecond))
	if err := <-done; err != nil {
		t.Fatalf("move-home: %v\n%s", err, out.String())
	}
	t.Logf("move-home took %v: %s", time.Since(started).Round(time.Millisecond),
		strings.TrimSpace(out.String()))
	if !strings.Contains(out.String(), "removed the old copy on b1") {
		t.Fatalf("move-home did not remove the old copy:\n%s", out.String())
	}
	time.Sleep(time.Second)
	ld.stopLoad()

	drained := time.Now()
	for {
		q, err := queueSize(c.front)
		if err == nil && q == 0 {
			break
		}
		if time.Since(drained) > 20*time.Second {
			t.Fatalf("the front's queue holds %d messages after 20 s, %v", q, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	ld.checkDelivered(t, c.front, 10*time.Second)

	// The filled messages are there too, in order, the first flagged.
	ld.mu.Lock()
	acked := len(ld.acked[0])
	ld.mu.Unlock()
	after := frontSession(t, c.front, "zhanglan", pw)
	for box, want := range map[string]int{"INBOX": inbox + acked, "Archive": archive} {
		sel, err := after.Select(box, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			t.Fatal(err)
		}
		if int(sel.NumMessages) != want {
			t.Errorf("%s through the front after the move: %d messages, want %d", box, sel.NumMessages, want)
		}
	}
	if _, err := after.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	first, err := after.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{
		Flags:       true,
		BodySection: []*imap.FetchItemBodySection{{Specifier: imap.PartSpecifierHeader, Peek: true}},
	}).Collect()
	if err != nil || len(first) != 1 {
		t.Fatalf("first INBOX message after the move: %v, %d answered", err, len(first))
	}
	hdr := string(first[0].FindBodySection(&imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader}))
	if !strings.Contains(hdr, "Subject: filed 1\r\n") || !slices.Contains(first[0].Flags, imap.FlagFlagged) {
		t.Errorf("first INBOX message after the move has flags %v and header\n%s\nwant filed 1, flagged",
			first[0].Flags, hdr)
	}

	// Nothing of the account is left on b1.
	if n := backMessages(t, c, c.backs[0], addr); n != 0 {
		t.Fatalf("b1 still holds %d messages of %s", n, addr)
	}
}

// backMessages signs in on a back directly with the fronts' proxy
// login, as the account at address, and answers how many messages all
// its mailboxes hold there.
func backMessages(t *testing.T, c *cluster, back *node, address string) int {
	t.Helper()
	var secret string
	for _, kv := range c.front.env {
		if v, ok := strings.CutPrefix(kv, "EGRET_CLUSTER_PROXY_SECRET="); ok {
			secret = v
		}
	}
	cl, err := imapclient.DialInsecure(back.imapAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Authenticate(sasl.NewPlainClient(address, "egret-front", secret)); err != nil {
		t.Fatalf("proxy login on the back: %v", err)
	}
	list, err := cl.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, l := range list {
		if slices.Contains(l.Attrs, imap.MailboxAttrNoSelect) {
			continue
		}
		sel, err := cl.Select(l.Mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			t.Fatal(err)
		}
		total += int(sel.NumMessages)
	}
	return total
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
