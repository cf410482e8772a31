package smtpd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/egretair/egret/mailcore/queue"
)

// inboxUIDs answers the UIDs in an account's INBOX once the queue has
// delivered.
func inboxUIDs(t testing.TB, f *fixture, accountID string) []uint32 {
	t.Helper()
	f.drain(t)
	snap, err := f.st.Messages(context.Background(), accountID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	var l []uint32
	for _, m := range snap.Messages {
		l = append(l, m.UID)
	}
	return l
}

// filesUnder answers every regular file below dir.
func filesUnder(t testing.TB, dir string) []string {
	t.Helper()
	var l []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			l = append(l, p)
		}
		return nil
	})
	return l
}

func TestHostileRecipientsAreRefused(t *testing.T) {
	f := start(t, Config{})
	tests := []struct {
		name string
		rcpt string
		code int
	}{
		{"a second domain after ours is relaying", "<lina@" + domain + "@evil.example>", 550},
		{"a quoted local part holding a foreign address is relaying", `<"lina@evil.example"@` + domain + ">", 550},
		{"the percent hack names no account", "<lina%evil.example@" + domain + ">", 550},
		{"a trailing dot is another domain", "<lina@" + domain + ".>", 550},
		{"an address literal is relaying", "<lina@[127.0.0.1]>", 550},
		{"a missing domain is a syntax error", "<lina@>", 501},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := rawSession(t, f.addr, "EHLO x\r\nMAIL FROM:<a@remote.example>\r\n"+
				"RCPT TO:"+tt.rcpt+"\r\nQUIT\r\n")
			lines := strings.Split(out, "\r\n")
			// greeting, EHLO lines, MAIL, RCPT, QUIT
			var rcptReply string
			for i, l := range lines {
				if strings.HasPrefix(l, "250 2.0.0 Roger") && i+1 < len(lines) {
					rcptReply = lines[i+1]
				}
			}
			if !strings.HasPrefix(rcptReply, fmt.Sprint(tt.code)) {
				t.Fatalf("RCPT %s answered %q, want %d\n%s", tt.rcpt, rcptReply, tt.code, out)
			}
		})
	}
	if l := inboxUIDs(t, f, "acct-lina"); len(l) != 0 {
		t.Errorf("INBOX holds %v", l)
	}
}

func TestSourceRouteAndMixedCaseReachTheAccount(t *testing.T) {
	f := start(t, Config{})
	out := rawSession(t, f.addr, "EHLO x\r\nMAIL FROM:<a@remote.example>\r\n"+
		"RCPT TO:<@relay.example,@other.example:Lina@EgretAir.Example>\r\n"+
		"RCPT TO:<LINA@"+strings.ToUpper(domain)+">\r\n"+
		"RCPT TO:<lina@"+domain+">\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n")
	if !strings.Contains(out, "250 2.0.0 OK") {
		t.Fatalf("not accepted:\n%s", out)
	}
	if l := inboxUIDs(t, f, "acct-lina"); !slices.Equal(l, []uint32{1}) {
		t.Errorf("one account named three ways holds UIDs %v, want one copy", l)
	}
}

func TestCommandsOutOfOrderAndPipelined(t *testing.T) {
	f := start(t, Config{})
	out := rawSession(t, f.addr, "EHLO x\r\nRCPT TO:<lina@"+domain+">\r\nDATA\r\n"+
		"MAIL FROM:<a@remote.example>\r\nRCPT TO:<lina@"+domain+">\r\n"+
		"RCPT TO:<nobody@"+domain+">\r\nRCPT TO:<wangwei@"+domain+">\r\nDATA\r\n"+
		"Subject: piped\r\n\r\nbody\r\n.\r\nQUIT\r\n")
	want := []string{"502 5.5.1", "502 5.5.1", "250 2.0.0", "250 2.0.0", "550 5.1.1",
		"250 2.0.0", "354", "250 2.0.0 OK", "221"}
	var got []string
	for _, l := range strings.Split(out, "\r\n") {
		if strings.HasPrefix(l, "250-") || strings.HasPrefix(l, "220") || l == "" {
			continue
		}
		if strings.HasPrefix(l, "250 ") && !strings.HasPrefix(l, "250 2.") {
			continue
		}
		got = append(got, l)
	}
	if len(got) != len(want) {
		t.Fatalf("replies:\n%s", strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("reply %d = %q, want %q", i, got[i], want[i])
		}
	}
	for _, id := range []string{"acct-lina", "acct-wangwei"} {
		if l := inboxUIDs(t, f, id); len(l) != 1 {
			t.Errorf("%s INBOX holds %v", id, l)
		}
	}
}

func TestTooManyRecipients(t *testing.T) {
	f := start(t, Config{MaxRecipients: 100})
	c := dial(t, f)
	if err := c.Mail("a@remote.example", nil); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := c.Rcpt("lina@"+domain, nil); err != nil {
			t.Fatalf("RCPT %d: %v", i+1, err)
		}
	}
	err := c.Rcpt("lina@"+domain, nil)
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 452 {
		t.Fatalf("RCPT 101 answered %v, want 452", err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "Subject: many\r\n\r\nx\r\n")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if l := inboxUIDs(t, f, "acct-lina"); len(l) != 1 {
		t.Errorf("100 RCPTs of one address stored %d copies, want 1", len(l))
	}
}

func TestAwkwardBytesAreStoredUnchanged(t *testing.T) {
	f := start(t, Config{})
	tests := []struct {
		name string
		wire string // between DATA and the final dot
		want string
	}{
		{"NUL bytes and Latin-1", "Subject: \xe9t\xe9\r\n\r\na\x00b\xff\r\n", "Subject: \xe9t\xe9\r\n\r\na\x00b\xff\r\n"},
		{"a dot-stuffed lone dot", "Subject: d\r\n\r\n..\r\n...x\r\n", "Subject: d\r\n\r\n.\r\n..x\r\n"},
		{"no final line end", "Subject: e\r\n\r\nlast", "Subject: e\r\n\r\nlast\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			end := "\r\n.\r\n"
			if strings.HasSuffix(tt.wire, "\r\n") {
				end = ".\r\n"
			}
			out := rawSession(t, f.addr, "EHLO x\r\nMAIL FROM:<a@remote.example>\r\n"+
				"RCPT TO:<lina@"+domain+">\r\nDATA\r\n"+tt.wire+end+"QUIT\r\n")
			if !strings.Contains(out, "250 2.0.0 OK") {
				t.Fatalf("not accepted:\n%s", out)
			}
			if got := string(splitTrace(t, readBack(t, f, "acct-lina"))); got != tt.want {
				t.Errorf("stored %q, want %q", got, tt.want)
			}
		})
	}

	// The client library stuffs dots; a lone "." line survives the trip.
	c := dial(t, f)
	msg := []byte("Subject: dots\r\n\r\n.\r\n.hidden\r\nend\r\n")
	if err := send(t, c, "a@remote.example", []string{"lina@" + domain}, msg); err != nil {
		t.Fatal(err)
	}
	if got := splitTrace(t, readBack(t, f, "acct-lina")); !bytes.Equal(got, msg) {
		t.Errorf("stored %q, want %q", got, msg)
	}
}

func TestDeclaredSizeAboveTheLimitIsRefusedAtMAIL(t *testing.T) {
	f := start(t, Config{MaxMessageBytes: 1000})
	out := rawSession(t, f.addr, "EHLO x\r\nMAIL FROM:<a@remote.example> SIZE=1001\r\n"+
		"MAIL FROM:<a@remote.example> SIZE=99999999999\r\nQUIT\r\n")
	if strings.Count(out, "\r\n552 ")+strings.Count(out, "\r\n501 ") != 2 {
		t.Fatalf("oversized SIZE= not refused:\n%s", out)
	}
}

func TestDroppedConnectionDuringDATALeavesNothing(t *testing.T) {
	f := start(t, Config{})
	conn, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, "EHLO x\r\nMAIL FROM:<a@remote.example>\r\nRCPT TO:<lina@"+domain+">\r\n"+
		"RCPT TO:<wangwei@"+domain+">\r\nDATA\r\nSubject: cut\r\n\r\n"+strings.Repeat("half a message\r\n", 5000))
	buf := make([]byte, 4096)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var seen string
	for !strings.Contains(seen, "354") {
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no 354: %v (%q)", err, seen)
		}
		seen += string(buf[:n])
	}
	conn.Close()

	// The server notices the drop; give it a moment, then look.
	deadline := time.Now().Add(5 * time.Second)
	for {
		files := filesUnder(t, f.dir)
		var stray []string
		for _, p := range files {
			if !strings.HasSuffix(p, "uidstate") && !strings.HasSuffix(p, "uidvalidity") &&
				!strings.HasSuffix(p, "subscriptions") {
				stray = append(stray, p)
			}
		}
		if len(stray) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("files left after the drop: %v", stray)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, id := range []string{"acct-lina", "acct-wangwei"} {
		if l := inboxUIDs(t, f, id); len(l) != 0 {
			t.Errorf("%s INBOX holds %v", id, l)
		}
	}
	for _, sub := range []string{"tmp", "spool"} {
		if l := filesUnder(t, filepath.Join(f.qdir, sub)); len(l) != 0 {
			t.Errorf("queue %s/ holds %v after the drop", sub, l)
		}
	}
}

func TestTwentyConcurrentDeliveriesToOneAccount(t *testing.T) {
	f := start(t, Config{})
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := smtp.Dial(f.addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for j := range 5 {
				msg := fmt.Sprintf("Subject: %d-%d\r\n\r\nbody\r\n", i, j)
				if err := send(t, c, "a@remote.example", []string{"lina@" + domain}, []byte(msg)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	l := inboxUIDs(t, f, "acct-lina")
	if len(l) != 100 {
		t.Fatalf("INBOX holds %d messages, want 100", len(l))
	}
	for i, uid := range l {
		if uid != uint32(i+1) {
			t.Fatalf("UIDs %v are not 1..100", l)
		}
	}
}

func TestQueueFailureIs451AndNothingHalfQueued(t *testing.T) {
	f := start(t, Config{})
	c := dial(t, f)

	// The queue's tmp/ is no longer a folder: nothing can be written.
	tmp := filepath.Join(f.qdir, "tmp")
	if err := os.Rename(tmp, tmp+".saved"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmp, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err := send(t, c, "a@remote.example", []string{"lina@" + domain}, []byte("Subject: lost\r\n\r\n"))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 451 {
		t.Fatalf("a queue that cannot write answered %v, want 451", err)
	}
	os.Remove(tmp)
	os.Rename(tmp+".saved", tmp)

	if n := f.q.Len(); n != 0 {
		t.Errorf("queue holds %d messages after a 451", n)
	}
	if l := filesUnder(t, filepath.Join(f.qdir, "spool")); len(l) != 0 {
		t.Errorf("spool holds %v after a 451", l)
	}
	if l := inboxUIDs(t, f, "acct-lina"); len(l) != 0 {
		t.Errorf("INBOX UIDs %v after a 451", l)
	}
	// And the queue works again.
	if err := send(t, c, "a@remote.example", []string{"lina@" + domain}, []byte("Subject: ok\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if l := inboxUIDs(t, f, "acct-lina"); !slices.Equal(l, []uint32{1}) {
		t.Errorf("INBOX UIDs %v, want [1]", l)
	}
}

func TestStoreFailureIsRetriedAndNothingHalfStored(t *testing.T) {
	f := start(t, Config{})
	// Deliver once so both accounts have their folders.
	c := dial(t, f)
	if err := send(t, c, "a@remote.example", []string{"lina@" + domain, "wangwei@" + domain},
		[]byte("Subject: first\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	f.drain(t)

	// wangwei's INBOX cannot take files: new/ is no longer a folder.
	// (The tests run as root, to whom a read-only folder is no
	// obstacle.)
	newDir := filepath.Join(f.dir, "accounts", "acct-wangwei", "mailboxes", "INBOX", "new")
	saved := newDir + ".saved"
	if err := os.Rename(newDir, saved); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(newDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// The message is queued (250) for both; lina's copy is stored,
	// wangwei's waits in the queue.
	if err := send(t, c, "a@remote.example", []string{"lina@" + domain, "wangwei@" + domain},
		[]byte("Subject: second\r\n\r\n")); err != nil {
		t.Fatalf("queueing answered %v, want 250", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		recs := f.q.Records()
		if len(recs) == 1 && recs[0].Recipients[1].State == queue.Deferred &&
			recs[0].Recipients[1].Attempts >= 2 && recs[0].Recipients[0].State == queue.Delivered {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("wangwei's copy not deferred and retried: %+v", recs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, p := range filesUnder(t, f.dir) {
		rel, _ := filepath.Rel(f.dir, p)
		if slices.Contains(strings.Split(rel, string(filepath.Separator)), "tmp") {
			t.Errorf("stray file %s", rel)
		}
	}

	// The folder works again: the next retry delivers, once each.
	os.Remove(newDir)
	os.Rename(saved, newDir)
	if l := inboxUIDs(t, f, "acct-wangwei"); !slices.Equal(l, []uint32{1, 2}) {
		t.Errorf("wangwei's INBOX UIDs %v, want [1 2]", l)
	}
	if l := inboxUIDs(t, f, "acct-lina"); !slices.Equal(l, []uint32{1, 2}) {
		t.Errorf("lina's INBOX UIDs %v, want [1 2]", l)
	}
}
