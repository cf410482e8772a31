package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/egretair/egret/directory/dirtest"
)

// Sizes of the index-loss test, small enough for two shared cores.
const (
	// lostIndexAccounts is how many accounts lose their index at once.
	lostIndexAccounts = 100
	// lostIndexMessages is how many messages each INBOX holds.
	lostIndexMessages = 3
	// mbsyncAccounts is how many of them mbsync keeps a copy of.
	mbsyncAccounts = 5
)

// TestMbsyncDownloadsNothingAfterIndexLoss is what an operator relies on
// when a disk fault or a careless cleanup takes the index files of many
// accounts: clients that cache mail must not download it all again.
//
// A hundred accounts get mail, flags and a second folder; mbsync copies
// five of them to local Maildirs. With the node stopped, every mailbox's
// uidstate, uidvalidity and keywords files are deleted, emptied or
// overwritten with garbage, in four patterns. After a restart, mbsync
// must fetch no message body and leave every local file as it was, and
// find every UIDVALIDITY as it recorded it; imaplib must see, in every
// account, the same mailboxes, UIDs and flags as before, and the same
// UIDVALIDITY for every mailbox that holds messages.
func TestMbsyncDownloadsNothingAfterIndexLoss(t *testing.T) {
	mbsync := needTool(t, mbsyncBin)
	n := startNode(t, dirtest.URL(t, "sqlite"))
	password := randomString(t, 20)

	// Accounts, with mail.
	start := time.Now()
	logins := make([]string, lostIndexAccounts)
	addrs := make([]string, lostIndexAccounts)
	for i := range logins {
		logins[i] = fmt.Sprintf("crew%03d", i+1)
		addrs[i] = createUser(t, n, logins[i], password, 0)
	}
	deliverEach(t, n, addrs, lostIndexMessages)
	t.Logf("%d accounts with %d messages each in %v",
		len(logins), lostIndexMessages, time.Since(start).Round(time.Millisecond))
	runPython(t, "imap_state.py", append([]string{"mark", n.imapAddr, password}, logins...)...)

	// The first sync fetches everything.
	data := dataDir(n)
	local := t.TempDir()
	rc := writeMbsyncrc(t, local, n.imapAddr, data, password, logins[:mbsyncAccounts])
	pulled := mbsyncPulls(runMbsync(t, mbsync, rc))
	if want := mbsyncAccounts * (lostIndexMessages + 1); pulled != want {
		t.Fatalf("first mbsync run fetched %d message bodies, want %d", pulled, want)
	}
	localBefore := maildirFiles(t, local)
	if got := len(localBefore); got != mbsyncAccounts*(lostIndexMessages+1) {
		t.Fatalf("local Maildirs hold %d messages after the first sync, want %d:\n%v",
			got, mbsyncAccounts*(lostIndexMessages+1), slices.Sorted(maps.Keys(localBefore)))
	}
	before := imapState(t, n, password, logins)

	// The loss, with the node stopped.
	n.stop(t)
	damaged := damageIndexes(t, data)
	t.Logf("damaged %d index files in %d mailboxes", damaged.files, damaged.mailboxes)
	if want := lostIndexAccounts * 5; damaged.mailboxes < want {
		t.Fatalf("damaged %d mailboxes, want %d or more (INBOX, Sent, Drafts, Trash, 归档 each)",
			damaged.mailboxes, want)
	}
	n = relaunch(t, n)

	// Nothing is downloaded again, and nothing local changes.
	if pulled := mbsyncPulls(runMbsync(t, mbsync, rc)); pulled != 0 {
		t.Errorf("mbsync after the index loss fetched %d message bodies again, want 0", pulled)
	}
	localAfter := maildirFiles(t, local)
	if !reflect.DeepEqual(localBefore, localAfter) {
		t.Errorf("local Maildir files changed after the index loss:\nbefore: %v\nafter:  %v",
			slices.Sorted(maps.Keys(localBefore)), slices.Sorted(maps.Keys(localAfter)))
	}

	// Every account, synced by mbsync or not, looks the same to IMAP.
	after := imapState(t, n, password, logins)
	var changed, uidnextBack, emptyRenewed int
	for _, login := range logins {
		diff := compareMailboxes(before[login], after[login])
		uidnextBack += diff.uidnextBack
		emptyRenewed += diff.emptyRenewed
		if len(diff.problems) == 0 {
			continue
		}
		changed++
		if changed <= 3 {
			t.Errorf("account %s after the index loss: %s", login, strings.Join(diff.problems, "; "))
		}
	}
	if changed > 0 {
		t.Errorf("%d of %d accounts show different mailboxes, UIDVALIDITY, UIDs or flags after the index loss",
			changed, len(logins))
	}
	// A lower UIDNEXT would hand expunged UIDs out again under the same
	// UIDVALIDITY (RFC 9051 §2.3.1.1). A new UIDVALIDITY for an empty
	// mailbox costs no download; the store documents it.
	if uidnextBack > 0 {
		t.Errorf("after the loss %d mailboxes have a lower UIDNEXT: expunged UIDs would be used again", uidnextBack)
	}
	t.Logf("after the loss: %d empty mailboxes with a new UIDVALIDITY", emptyRenewed)

	// The operator can see what happened.
	if got := strings.Count(tail(n.logPath, 100000), `"index rebuilt"`); got < lostIndexAccounts {
		t.Errorf("the log has %d \"index rebuilt\" lines, want one or more for each of %d accounts",
			got, lostIndexAccounts)
	}
}

// deliverEach sends count messages to every address over SMTP, from a
// few connections at once. One subject of each INBOX is Chinese, in an
// RFC 2047 encoded word.
func deliverEach(t *testing.T, n *node, addrs []string, count int) {
	t.Helper()
	const senders = 4
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := smtp.Dial(n.smtpAddr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Quit()
			for i := s; i < len(addrs); i += senders {
				for m := range count {
					subject := fmt.Sprintf("roster %d", m+1)
					if m == 0 {
						subject = "=?UTF-8?B?6Iiq54+t6KGo?= " + subject // 航班表
					}
					msg := fmt.Sprintf("From: <ops@remote.example>\r\nTo: <%s>\r\n"+
						"Subject: %s\r\nMessage-ID: <%d.%d@remote.example>\r\n\r\n"+
						"Crew roster number %d.\r\n", addrs[i], subject, i, m, m+1)
					err := c.SendMail("ops@remote.example", []string{addrs[i]}, strings.NewReader(msg))
					if err != nil {
						errs <- fmt.Errorf("mail to %s: %w", addrs[i], err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// mailboxState is one mailbox as imap_state.py's dump shows it.
type mailboxState struct {
	UIDValidity uint32 `json:"uidvalidity"`
	UIDNext     uint32 `json:"uidnext"`
	// Messages are [UID, [flags...]] pairs in UID order.
	Messages []json.RawMessage `json:"messages"`
}

// mailboxDiff is what changed in one account between two dumps.
type mailboxDiff struct {
	// problems would make a client download mail again or show it
	// wrongly: a mailbox gone or new, a UIDVALIDITY of a mailbox with
	// messages, a UID or a flag.
	problems []string
	// uidnextBack counts mailboxes whose UIDNEXT went down, which would
	// let expunged UIDs be handed out again.
	uidnextBack int
	// emptyRenewed counts mailboxes with no messages whose UIDVALIDITY
	// changed: with no file left to tell it, the store hands out a new
	// one, which costs a client nothing to download.
	emptyRenewed int
}

// compareMailboxes compares one account's mailboxes before and after.
func compareMailboxes(before, after map[string]mailboxState) mailboxDiff {
	var d mailboxDiff
	for _, name := range slices.Sorted(maps.Keys(before)) {
		b := before[name]
		a, ok := after[name]
		switch {
		case !ok:
			d.problems = append(d.problems, "mailbox "+name+" is gone")
			continue
		case !slices.EqualFunc(b.Messages, a.Messages, func(x, y json.RawMessage) bool {
			return bytes.Equal(x, y)
		}):
			d.problems = append(d.problems, fmt.Sprintf("%s holds %s, before %s",
				name, joinRaw(a.Messages), joinRaw(b.Messages)))
		case b.UIDValidity != a.UIDValidity && len(b.Messages) > 0:
			d.problems = append(d.problems, fmt.Sprintf("%s has UIDVALIDITY %d, before %d",
				name, a.UIDValidity, b.UIDValidity))
		case b.UIDValidity != a.UIDValidity:
			d.emptyRenewed++
		}
		if a.UIDNext < b.UIDNext {
			d.uidnextBack++
		}
	}
	for name := range after {
		if _, ok := before[name]; !ok {
			d.problems = append(d.problems, "mailbox "+name+" is new")
		}
	}
	return d
}

// joinRaw shows a list of JSON values on one line.
func joinRaw(list []json.RawMessage) string {
	parts := make([]string, len(list))
	for i, v := range list {
		parts[i] = string(v)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// imapState answers imap_state.py's dump of every login.
func imapState(t *testing.T, n *node, password string, logins []string) map[string]map[string]mailboxState {
	t.Helper()
	args := append([]string{filepath.Join(repoRoot, "integration/clients/imap_state.py"),
		"dump", n.imapAddr, password}, logins...)
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "python3", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("imap_state.py dump: %v\n%s%s", err, out, stderr.Bytes())
	}
	var state map[string]map[string]mailboxState
	if err := json.Unmarshal(out, &state); err != nil {
		t.Fatalf("imap_state.py dump: not JSON: %v\n%s", err, out)
	}
	if len(state) != len(logins) {
		t.Fatalf("imap_state.py dump: %d accounts, want %d", len(state), len(logins))
	}
	return state
}

// writeMbsyncrc writes an mbsync configuration that copies every folder
// of each login to its own Maildir under local, over STARTTLS, trusting
// the node's self-signed certificate.
func writeMbsyncrc(t *testing.T, local, imapAddr, data, password string, logins []string) string {
	t.Helper()
	host, port, _ := strings.Cut(imapAddr, ":")
	var b strings.Builder
	for _, login := range logins {
		dir := filepath.Join(local, login)
		fmt.Fprintf(&b, "IMAPAccount %[1]s\nHost %[2]s\nPort %[3]s\nUser %[1]s\nPass %[4]s\n"+
			"SSLType STARTTLS\nCertificateFile %[5]s\n\n",
			login, host, port, password, filepath.Join(data, "tls", "selfsigned-cert.pem"))
		fmt.Fprintf(&b, "IMAPStore %[1]s-far\nAccount %[1]s\n\n", login)
		fmt.Fprintf(&b, "MaildirStore %[1]s-near\nPath %[2]s/\nInbox %[2]s/INBOX\nSubFolders Verbatim\n\n",
			login, dir)
		fmt.Fprintf(&b, "Channel %[1]s\nFar :%[1]s-far:\nNear :%[1]s-near:\nPatterns *\n"+
			"Create Near\nSync Pull\nSyncState *\n\n", login)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	rc := filepath.Join(local, "mbsyncrc")
	if err := os.WriteFile(rc, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return rc
}

// runMbsync syncs every channel of rc and answers mbsync's output with
// the IMAP conversation (-Dn). mbsync fails, and with it the test, when
// a mailbox's UIDVALIDITY differs from the one it recorded.
func runMbsync(t *testing.T, mbsync, rc string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, mbsync, "-Dn", "-c", rc, "-a").CombinedOutput()
	if err != nil {
		t.Fatalf("mbsync -a: %v\n%s", err, out)
	}
	t.Logf("mbsync -a (%v)", time.Since(start).Round(time.Millisecond))
	return string(out)
}

// mbsyncPulls counts the message bodies in mbsync's IMAP conversation:
// mbsync 1.4 fetches each new message with its own UID FETCH.
func mbsyncPulls(conversation string) int {
	return strings.Count(conversation, "(BODY.PEEK[])")
}

// maildirFiles answers every message file under dir, by path, with a
// hash of its content. mbsync's own state files are left out: it
// rewrites them on every run.
func maildirFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		parent := filepath.Base(filepath.Dir(path))
		if parent != "cur" && parent != "new" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		rel, _ := filepath.Rel(dir, path)
		files[rel] = hex.EncodeToString(sum[:8])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// indexDamage counts what damageIndexes did.
type indexDamage struct {
	mailboxes, files int
}

// damageIndexes takes the index files of every mailbox of every account
// under the node's data folder, in one of four patterns by mailbox:
//
//	0  uidstate, uidvalidity and keywords deleted
//	1  uidstate and keywords overwritten with garbage
//	2  uidstate emptied, uidvalidity deleted
//	3  uidstate and uidvalidity overwritten with garbage, keywords deleted
//
// Pattern 3 leaves nothing but the message file names to tell the
// UIDVALIDITY.
func damageIndexes(t *testing.T, data string) indexDamage {
	t.Helper()
	boxes, err := filepath.Glob(filepath.Join(data, "mail", "accounts", "*", "mailboxes", "*"))
	if err != nil {
		t.Fatal(err)
	}
	var d indexDamage
	garbage := []byte("\x00\x17not an index {\n")
	for i, box := range boxes {
		del := func(name string) {
			err := os.Remove(filepath.Join(box, name))
			if err == nil {
				d.files++
			} else if !os.IsNotExist(err) {
				t.Fatal(err)
			}
		}
		put := func(name string, b []byte) {
			if err := os.WriteFile(filepath.Join(box, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
			d.files++
		}
		switch i % 4 {
		case 0:
			del("uidstate")
			del("uidvalidity")
			del("keywords")
		case 1:
			put("uidstate", garbage)
			put("keywords", garbage)
		case 2:
			put("uidstate", nil)
			del("uidvalidity")
		case 3:
			put("uidstate", garbage)
			put("uidvalidity", garbage)
			del("keywords")
		}
		d.mailboxes++
	}
	return d
}
