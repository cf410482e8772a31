package imapd

import (
	"bufio"
	"fmt"
	"io/fs"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/egretair/egret/mailcore/store"
)

// raw is an IMAP conversation by hand, for what imapclient would not
// send or would hide.
type raw struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
	n    int
}

func dialRaw(t *testing.T, e *env) *raw {
	t.Helper()
	conn, err := net.Dial("tcp", e.imapAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	r := &raw{t: t, conn: conn, br: bufio.NewReader(conn)}
	r.line() // greeting
	return r
}

func (r *raw) line() string {
	r.t.Helper()
	l, err := r.br.ReadString('\n')
	if err != nil {
		r.t.Fatalf("read: %v (after %q)", err, l)
	}
	return l
}

// cmd sends one command and answers every line up to its tagged reply,
// which comes last.
func (r *raw) cmd(format string, args ...any) []string {
	r.t.Helper()
	r.n++
	tag := fmt.Sprintf("T%d", r.n)
	fmt.Fprintf(r.conn, tag+" "+format+"\r\n", args...)
	var out []string
	for {
		l := r.line()
		out = append(out, l)
		if strings.HasPrefix(l, tag+" ") {
			return out
		}
	}
}

// status answers the tagged reply's status word.
func status(lines []string) string {
	f := strings.Fields(lines[len(lines)-1])
	if len(f) < 2 {
		return ""
	}
	return f[1]
}

func TestCommandsNeedTheirState(t *testing.T) {
	e := startEnv(t, nil)
	r := dialRaw(t, e)
	if s := status(r.cmd("SELECT INBOX")); s == "OK" {
		t.Error("SELECT before LOGIN succeeded")
	}
	if s := status(r.cmd("LOGIN lina secret-1")); s != "OK" {
		t.Fatalf("LOGIN %s", s)
	}
	for _, c := range []string{"FETCH 1 FLAGS", "UID STORE 1 +FLAGS (\\Seen)", "EXPUNGE", "UID SEARCH ALL", "CLOSE"} {
		if s := status(r.cmd(c)); s == "OK" {
			t.Errorf("%s without a selected mailbox succeeded", c)
		}
	}
}

func TestHostileLoginsLeaveTheServerUp(t *testing.T) {
	e := startEnv(t, nil)
	r := dialRaw(t, e)
	long := strings.Repeat("p", 10<<10)
	out := r.cmd("LOGIN lina {%d+}\r\n%s", len(long), long)
	if status(out) != "NO" {
		t.Errorf("LOGIN with a 10 KB password: %q", out[len(out)-1])
	}
	for i := range 50 {
		if s := status(r.cmd("LOGIN lina wrong%d", i)); s != "NO" {
			t.Fatalf("attempt %d answered %s", i, s)
		}
	}
	if s := status(r.cmd("LOGIN lina secret-1")); s != "OK" {
		t.Errorf("right password after failures: %s", s)
	}

	// AUTHENTICATE PLAIN acting for another user is refused.
	c, err := imapclient.DialInsecure(e.imapAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Authenticate(sasl.NewPlainClient("wangwei", "lina", "secret-1")); err == nil {
		t.Error("lina authenticated as wangwei")
	}
	if err := c.Authenticate(sasl.NewPlainClient("lina", "lina", "secret-1")); err != nil {
		t.Errorf("authorization identity equal to the user refused: %v", err)
	}
}

func TestFetchOddSectionsAndRanges(t *testing.T) {
	e := startEnv(t, nil)
	for i := range 3 {
		e.send(t, "lina@"+domain, []byte(fmt.Sprintf("Subject: %d\r\n\r\nplain body %d\r\n", i, i)))
	}
	r := dialRaw(t, e)
	r.cmd("LOGIN lina secret-1")
	r.cmd("SELECT INBOX")

	out := r.cmd("UID FETCH 5:* (UID)")
	if status(out) != "OK" || len(out) != 2 || !strings.Contains(out[0], "UID 3") {
		t.Errorf("UID FETCH 5:* with highest UID 3 = %q, want UID 3 only", out)
	}
	out = r.cmd("FETCH 1:4294967295,1,2,3,1:* (UID)")
	if status(out) != "OK" || len(out) != 4 {
		t.Errorf("huge overlapping set = %q", out)
	}
	out = r.cmd("FETCH 1 (BODY.PEEK[1.2.3])")
	if status(out) != "OK" {
		t.Errorf("BODY[1.2.3] of a single-part message: %q", out)
	}
	out = r.cmd("FETCH 1 (BODY.PEEK[]<0.10>)")
	if status(out) != "OK" || !strings.Contains(strings.Join(out, ""), "BODY[]<0> {10}\r\n") {
		t.Errorf("partial fetch = %q", out)
	}
	out = r.cmd("FETCH 1 (BODY.PEEK[]<100000.10>)")
	if status(out) != "OK" || !strings.Contains(strings.Join(out, ""), "{0}") {
		t.Errorf("partial fetch beyond the end = %q", out)
	}
	if s := status(r.cmd("FETCH 0 (UID)")); s == "OK" {
		t.Error("sequence number 0 accepted")
	}

	// STORE on an EXAMINEd mailbox changes nothing.
	r.cmd("EXAMINE INBOX")
	if s := status(r.cmd("STORE 1 +FLAGS (\\Deleted)")); s == "OK" {
		t.Error("STORE in an EXAMINEd mailbox succeeded")
	}
	if s := status(r.cmd("EXPUNGE")); s == "OK" {
		t.Error("EXPUNGE in an EXAMINEd mailbox succeeded")
	}
}

func TestAppendOddities(t *testing.T) {
	e := startEnv(t, nil)
	r := dialRaw(t, e)
	r.cmd("LOGIN lina secret-1")
	out := r.cmd("APPEND INBOX (\\Recent \\Seen $Work) {5+}\r\nhello")
	if status(out) != "OK" {
		t.Fatalf("APPEND: %q", out)
	}
	snap, err := e.st.Messages(t.Context(), "acct-lina", "INBOX")
	if err != nil || len(snap.Messages) != 1 {
		t.Fatalf("INBOX %+v, %v", snap, err)
	}
	if f := snap.Messages[0].Flags; slices.Contains(f, `\Recent`) || !slices.Contains(f, `\Seen`) {
		t.Errorf("stored flags %v", f)
	}
	// A literal that claims more than the limit is refused before it
	// is sent.
	out = r.cmd("APPEND INBOX {4294967295}")
	if status(out) == "OK" || strings.HasPrefix(out[0], "+") {
		t.Errorf("APPEND of 4 GB: %q", out)
	}
}

func TestMailboxNamesCannotLeaveTheStore(t *testing.T) {
	e := startEnv(t, nil)
	c := e.login(t, nil)
	root := filepath.Dir(e.mailDir)
	before := dirsUnder(t, root)
	names := []string{"../../../escape", "..", "a/../../b", ".hidden", "./x", "a/./.."}
	for _, n := range names {
		c.Create(n, nil).Wait()
	}
	for _, n := range []string{"/lead", "a//b", "x%2F..%2Fy", "wild*", "tab\tx", strings.Repeat("long", 100)} {
		if err := c.Create(n, nil).Wait(); err == nil {
			t.Errorf("CREATE %q succeeded", n)
		}
	}
	r := dialRaw(t, e)
	r.cmd("LOGIN lina secret-1")
	if s := status(r.cmd("CREATE {5+}\r\nnul\x00x")); s == "OK" {
		t.Error("CREATE of a name with NUL succeeded")
	}
	for _, d := range dirsUnder(t, root) {
		if slices.Contains(before, d) {
			continue
		}
		rel, _ := filepath.Rel(filepath.Join(e.mailDir, "accounts", "acct-lina", "mailboxes"), d)
		if strings.HasPrefix(rel, "..") || strings.Count(rel, string(filepath.Separator)) > 1 {
			t.Errorf("CREATE made %s", d)
		}
	}
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range list {
		got = append(got, l.Mailbox)
	}
	for _, n := range names {
		if !slices.Contains(got, n) {
			t.Errorf("%q not listed back: %q", n, got)
		}
	}
}

func dirsUnder(t *testing.T, root string) []string {
	var l []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			l = append(l, p)
		}
		return nil
	})
	return l
}

func TestChineseMailboxNamesTravelAsModifiedUTF7(t *testing.T) {
	e := startEnv(t, nil)
	c := e.login(t, nil)
	if err := c.Create("收件箱/测试", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range list {
		got = append(got, l.Mailbox)
	}
	if !slices.Contains(got, "收件箱") || !slices.Contains(got, "收件箱/测试") {
		t.Errorf("listed %q", got)
	}
	if _, err := c.Select("收件箱/测试", nil).Wait(); err != nil {
		t.Error(err)
	}

	r := dialRaw(t, e)
	r.cmd("LOGIN lina secret-1")
	out := strings.Join(r.cmd(`LIST "" "*"`), "")
	if !strings.Contains(out, `"&ZTZO9nux-/&bUuL1Q-"`) {
		t.Errorf("raw LIST lacks the modified UTF-7 name:\n%s", out)
	}
}

func TestInboxCannotBeDeletedAndRenamingItEmptiesIt(t *testing.T) {
	e := startEnv(t, nil)
	e.send(t, "lina@"+domain, []byte("Subject: keep\r\n\r\n"))
	c := e.login(t, nil)
	if err := c.Delete("inbox").Wait(); err == nil {
		t.Error("DELETE inbox succeeded")
	}
	if err := c.Rename("INBOX", "Old", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	for box, want := range map[string]uint32{"INBOX": 0, "Old": 1} {
		st, err := c.Status(box, &imap.StatusOptions{NumMessages: true}).Wait()
		if err != nil || *st.NumMessages != want {
			t.Errorf("%s: %v, %v; want %d messages", box, st, err, want)
		}
	}
}

func TestDeletedParentStaysReachableInLIST(t *testing.T) {
	e := startEnv(t, nil)
	c := e.login(t, nil)
	if err := c.Create("Crew/Rosters", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete("Crew").Wait(); err != nil {
		t.Fatal(err)
	}
	list, err := c.List("", "%", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var crew *imap.ListData
	for _, l := range list {
		if l.Mailbox == "Crew" {
			crew = l
		}
	}
	if crew == nil {
		t.Fatal(`LIST "" % does not lead to Crew/Rosters any more`)
	}
	if !slices.Contains(crew.Attrs, imap.MailboxAttrNonExistent) || !slices.Contains(crew.Attrs, imap.MailboxAttrHasChildren) {
		t.Errorf("Crew attrs %v, want \\NonExistent \\HasChildren", crew.Attrs)
	}
	list, _ = c.List("Crew/", "%", nil).Collect()
	if len(list) != 1 || list[0].Mailbox != "Crew/Rosters" {
		t.Errorf("LIST Crew/ %% = %v", list)
	}
	list, _ = c.List("", "*", nil).Collect()
	for _, l := range list {
		if l.Mailbox == "Crew" {
			t.Errorf(`LIST "" * lists the deleted Crew: %v`, l.Attrs)
		}
	}
}

func TestSelectedMailboxDeletedOrRenamedByAnotherSession(t *testing.T) {
	e := startEnv(t, nil)
	a := dialRaw(t, e)
	a.cmd("LOGIN lina secret-1")
	b := e.login(t, nil)

	// Renamed elsewhere: the session goes on reading it.
	if err := b.Create("Work", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	ap := b.Append("Work", 8, nil)
	ap.Write([]byte("first\r\n\r"))
	ap.Close()
	if _, err := ap.Wait(); err != nil {
		t.Fatal(err)
	}
	if s := status(a.cmd("SELECT Work")); s != "OK" {
		t.Fatal(s)
	}
	if err := b.Rename("Work", "Archive", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	out := a.cmd("FETCH 1 (BODY.PEEK[])")
	if status(out) != "OK" || !strings.Contains(strings.Join(out, ""), "first") {
		t.Errorf("FETCH after the mailbox was renamed elsewhere: %q", out)
	}

	// Another mailbox takes the old name and holds a message marked
	// \Deleted; the session's EXPUNGE and STORE must not touch it.
	if err := b.Create("Work", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	ap = b.Append("Work", 7, &imap.AppendOptions{Flags: []imap.Flag{imap.FlagDeleted}})
	ap.Write([]byte("other\r\n"))
	ap.Close()
	if _, err := ap.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete("Archive").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := b.Create("Archive", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	a.cmd("NOOP")
	a.cmd("EXPUNGE")
	a.cmd("UID STORE 1 +FLAGS (\\Flagged)")
	a.cmd("CLOSE")
	st, err := b.Status("Work", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil || *st.NumMessages != 1 {
		t.Errorf("the new Work after the old session's EXPUNGE: %+v, %v", st, err)
	}
	snap, _ := e.st.Messages(t.Context(), "acct-lina", "Work")
	if len(snap.Messages) == 1 && slices.Contains(snap.Messages[0].Flags, `\Flagged`) {
		t.Error("the old session's STORE reached the new Work")
	}
}

func TestTwoSessionsExpungeAtOnce(t *testing.T) {
	e := startEnv(t, nil)
	for i := range 20 {
		e.send(t, "lina@"+domain, []byte(fmt.Sprintf("Subject: %d\r\n\r\n", i)))
	}
	var clients []*imapclient.Client
	for range 2 {
		c := e.login(t, nil)
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	all := imap.SeqSetNum()
	all.AddRange(1, 0)
	if err := clients[0].Store(all, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true,
		Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Expunge().Collect(); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for i, c := range clients {
		if err := c.Noop().Wait(); err != nil {
			t.Fatal(err)
		}
		if n := c.Mailbox().NumMessages; n != 0 {
			t.Errorf("session %d sees %d messages", i, n)
		}
	}
}

func TestIdleDoneAndLogoutDuringIdle(t *testing.T) {
	e := startEnv(t, nil)
	r := dialRaw(t, e)
	r.cmd("LOGIN lina secret-1")
	r.cmd("SELECT INBOX")
	fmt.Fprintf(r.conn, "I1 IDLE\r\n")
	if l := r.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE answered %q", l)
	}
	e.send(t, "lina@"+domain, []byte("Subject: during idle\r\n\r\n"))
	if l := r.line(); !strings.Contains(l, "EXISTS") {
		t.Errorf("during IDLE got %q", l)
	}
	fmt.Fprintf(r.conn, "DONE\r\n")
	if l := r.line(); !strings.HasPrefix(l, "I1 OK") {
		t.Errorf("DONE answered %q", l)
	}

	// LOGOUT instead of DONE, then the connection drops mid-IDLE.
	fmt.Fprintf(r.conn, "I2 IDLE\r\n")
	r.line()
	fmt.Fprintf(r.conn, "I3 LOGOUT\r\n")
	r.conn.Close()
	r2 := dialRaw(t, e)
	if s := status(r2.cmd("LOGIN lina secret-1")); s != "OK" {
		t.Errorf("server after a dropped IDLE: %s", s)
	}
}

func TestChangeRightAfterIdleStartsIsSent(t *testing.T) {
	e := startEnv(t, nil)
	e.send(t, "lina@"+domain, []byte("Subject: x\r\n\r\n"))
	r := dialRaw(t, e)
	r.cmd("LOGIN lina secret-1")
	r.cmd("SELECT INBOX")
	// The change lands just after the continuation request, the moment
	// go-imap's own tracker was not yet listening.
	for i := range 40 {
		fmt.Fprintf(r.conn, "I%d IDLE\r\n", i)
		if l := r.line(); !strings.HasPrefix(l, "+") {
			t.Fatalf("IDLE answered %q", l)
		}
		op := []string{`\Flagged`}
		_, err := e.st.StoreFlags(t.Context(), "acct-lina", "INBOX", []uint32{1},
			[]store.FlagOp{store.FlagsAdd, store.FlagsRemove}[i%2], op)
		if err != nil {
			t.Fatal(err)
		}
		r.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		l, err := r.br.ReadString('\n')
		if err != nil || !strings.Contains(l, "FETCH") {
			t.Fatalf("round %d: change during IDLE not sent (%q, %v)", i, l, err)
		}
		r.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		fmt.Fprintf(r.conn, "DONE\r\n")
		if l := r.line(); !strings.HasPrefix(l, fmt.Sprintf("I%d OK", i)) {
			t.Fatalf("DONE answered %q", l)
		}
	}
}
