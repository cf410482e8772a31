package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"

	"github.com/egretair/egret/directory/dirtest"
)

// screenWait bounds the wait for mutt's screen to show something.
const screenWait = 30 * time.Second

// muttSubjects are the messages the mutt test delivers. The first one's
// Subject is an RFC 2047 encoded word that mutt must show as Chinese.
var muttSubjects = []struct{ header, shown string }{
	{"=?UTF-8?B?6Iiq54+t6KGo?= MU5101", "航班表 MU5101"},
	{"crew briefing", "crew briefing"},
	{"roster change", "roster change"},
}

// TestMuttListsAndMovesOverSTARTTLS drives mutt, the terminal client,
// in a tmux window of its own: over STARTTLS with the node's self-signed
// certificate, its index must list every message of the INBOX with the
// Chinese subject decoded, and saving a message to another folder and
// syncing must leave it there and nowhere else.
func TestMuttListsAndMovesOverSTARTTLS(t *testing.T) {
	n := startNode(t, dirtest.URL(t, "sqlite"))
	muttListsAndMoves(t, n)
}

// muttListsAndMoves is TestMuttListsAndMovesOverSTARTTLS's check, with
// mail sent to and read from n.
func muttListsAndMoves(t *testing.T, n *node) {
	t.Helper()
	mutt := needTool(t, muttBin)
	tmux := needTool(t, tmuxBin)
	password := randomString(t, 20)
	address := createUser(t, n, "liuyang", password, 0)

	c, err := smtp.Dial(n.smtpAddr)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range muttSubjects {
		msg := fmt.Sprintf("From: Dispatch <ops@remote.example>\r\nTo: <%s>\r\n"+
			"Subject: %s\r\nMessage-ID: <mutt.%d@remote.example>\r\n\r\nbody %d\r\n",
			address, s.header, i, i)
		if err := c.SendMail("ops@remote.example", []string{address}, strings.NewReader(msg)); err != nil {
			t.Fatal(err)
		}
	}
	c.Quit()

	// The muttrc from its template.
	dir := t.TempDir()
	tmpl, err := os.ReadFile(filepath.Join(repoRoot, "integration/clients/muttrc.in"))
	if err != nil {
		t.Fatal(err)
	}
	rc := strings.NewReplacer(
		"@USER@", "liuyang",
		"@HOST@", n.imapAddr,
		"@PASSWORD@", password,
		"@CERT@", filepath.Join(dataDir(n), "tls", "selfsigned-cert.pem"),
	).Replace(string(tmpl))
	rcPath := filepath.Join(dir, "muttrc")
	if err := os.WriteFile(rcPath, []byte(rc), 0o600); err != nil {
		t.Fatal(err)
	}

	// mutt in a tmux server of the test's own, on its own socket.
	term := &tmuxWindow{bin: tmux, socket: filepath.Join(dir, "tmux.sock"), home: dir}
	term.start(t, mutt, "-n", "-F", rcPath)
	t.Cleanup(term.stop)
	screen := term.waitFor(t, "every subject in the index", func(s string) bool {
		for _, m := range muttSubjects {
			if !strings.Contains(s, m.shown) {
				return false
			}
		}
		return true
	})
	t.Logf("mutt index:\n%s", screen)

	// Save "crew briefing" to Archive, which mutt creates, and sync.
	term.keys(t, "/", "crew briefing", "Enter")
	term.keys(t, "s")
	term.waitFor(t, "the save prompt", func(s string) bool { return strings.Contains(s, "Save to mailbox") })
	term.keys(t, "C-u", "=Archive", "Enter")
	// mutt copies the message, then marks it for deletion.
	term.waitFor(t, "the message marked deleted", func(s string) bool {
		return strings.Contains(s, " Del:1 ")
	})
	term.keys(t, "$")
	screen = term.waitFor(t, "the index without the moved message", func(s string) bool {
		return !strings.Contains(s, "crew briefing") && strings.Contains(s, muttSubjects[0].shown)
	})
	term.keys(t, "q")

	// What another client sees.
	got := mailboxSubjects(t, n.imapAddr, "liuyang", password)
	want := map[string][]string{
		"INBOX":   {muttSubjects[0].header, muttSubjects[2].header},
		"Archive": {muttSubjects[1].header},
	}
	// The queue may deliver the three in any order, so UIDs tell no
	// order; the lists are compared sorted.
	for box, subjects := range want {
		slices.Sort(subjects)
		slices.Sort(got[box])
		if !slices.Equal(got[box], subjects) {
			t.Errorf("after mutt's save and sync, %s holds %q, want %q\nmutt's screen:\n%s",
				box, got[box], subjects, screen)
		}
	}
}

// mailboxSubjects answers the Subject fields, undecoded, of the INBOX
// and Archive, as go-imap's client reads them.
func mailboxSubjects(t *testing.T, addr, user, password string) map[string][]string {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, password).Wait(); err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, box := range []string{"INBOX", "Archive"} {
		sel, err := c.Select(box, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			t.Fatalf("SELECT %s: %v", box, err)
		}
		if sel.NumMessages == 0 {
			continue
		}
		section := &imap.FetchItemBodySection{
			Specifier:    imap.PartSpecifierHeader,
			HeaderFields: []string{"Subject"},
			Peek:         true,
		}
		// SeqSetNum lists numbers; a range needs AddRange.
		var all imap.SeqSet
		all.AddRange(1, sel.NumMessages)
		msgs, err := c.Fetch(all, &imap.FetchOptions{
			UID:         true,
			BodySection: []*imap.FetchItemBodySection{section},
		}).Collect()
		if err != nil {
			t.Fatalf("FETCH in %s: %v", box, err)
		}
		for _, m := range msgs {
			h := strings.TrimSpace(string(m.FindBodySection(section)))
			out[box] = append(out[box], strings.TrimSpace(strings.TrimPrefix(h, "Subject:")))
		}
	}
	c.Logout().Wait()
	return out
}

// tmuxWindow is a detached tmux server, on a socket of its own, that
// runs one program in a 100x30 UTF-8 terminal.
type tmuxWindow struct {
	bin, socket, home string
}

func (w *tmuxWindow) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, w.bin, append([]string{"-S", w.socket}, args...)...)
	cmd.Env = append(environWithoutEgret(), "HOME="+w.home, "LANG=C.UTF-8", "LC_ALL=C.UTF-8", "TERM=xterm-256color")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// start runs the program in a new window. When it exits, the window
// stays, showing its last screen and exit status, until stop.
func (w *tmuxWindow) start(t *testing.T, program string, args ...string) {
	t.Helper()
	cmdline := append([]string{"new-session", "-d", "-x", "100", "-y", "30", "--",
		"sh", "-c", `"$0" "$@"; echo "exited with status $?"; sleep 600`, program}, args...)
	if out, err := w.run(cmdline...); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
}

// stop ends the test's tmux server, and the program in it.
func (w *tmuxWindow) stop() {
	w.run("kill-server")
}

// keys types keys into the window, in tmux's send-keys names.
func (w *tmuxWindow) keys(t *testing.T, keys ...string) {
	t.Helper()
	for _, k := range keys {
		args := []string{"send-keys", "-t", "0"}
		// A key name (Enter, C-u) is sent as that key, anything
		// longer as literal text.
		if k == "Enter" || strings.HasPrefix(k, "C-") || len(k) == 1 {
			args = append(args, k)
		} else {
			args = append(args, "-l", k)
		}
		if out, err := w.run(args...); err != nil {
			t.Fatalf("tmux send-keys %q: %v\n%s", k, err, out)
		}
	}
}

// waitFor answers the screen once ready says so; it fails the test,
// showing the screen, after screenWait.
func (w *tmuxWindow) waitFor(t *testing.T, what string, ready func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(screenWait)
	var screen string
	for time.Now().Before(deadline) {
		out, err := w.run("capture-pane", "-p", "-t", "0")
		if err != nil {
			t.Fatalf("tmux capture-pane: %v\n%s", err, out)
		}
		screen = out
		if ready(screen) {
			return screen
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("mutt did not show %s within %v; the screen:\n%s", what, screenWait, screen)
	return ""
}
