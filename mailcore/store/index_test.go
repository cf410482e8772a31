package store

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// logBuffer is a slog handler target that tests can read.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// fillAccounts gives n accounts two mailboxes with flagged, seen and
// keyworded messages, and answers every mailbox's snapshot.
func fillAccounts(t *testing.T, st *Store, n int) map[string]Snapshot {
	t.Helper()
	ctx := context.Background()
	want := make(map[string]Snapshot)
	for i := range n {
		id := fmt.Sprintf("acct-%03d", i)
		for j := range 3 {
			st.Deliver(ctx, fmt.Sprintf("q-%d-%d", i, j), []string{id},
				strings.NewReader(fmt.Sprintf("Subject: %d\r\n\r\n%d\r\n", i, j)))
		}
		st.StoreFlags(ctx, id, Inbox, []uint32{1}, FlagsAdd, []string{FlagSeen, "$Work"})
		st.StoreFlags(ctx, id, Inbox, []uint32{3}, FlagsAdd, []string{FlagFlagged})
		if _, err := st.Copy(ctx, id, Inbox, []uint32{1, 2}, "Trash"); err != nil {
			t.Fatal(err)
		}
		for _, box := range []string{Inbox, "Trash"} {
			snap, err := st.Messages(ctx, id, box)
			if err != nil {
				t.Fatal(err)
			}
			want[id+"/"+box] = snap
		}
	}
	return want
}

// damageIndex removes or garbles an account's index files; which, and
// how, depends on i so that 100 accounts see every kind of damage.
func damageIndex(t *testing.T, dir, id string, i int) {
	t.Helper()
	acctDir := filepath.Join(dir, "accounts", id)
	boxes, _ := filepath.Glob(filepath.Join(acctDir, "mailboxes", "*"))
	files := []string{filepath.Join(acctDir, "uidvalidity")}
	for _, b := range boxes {
		files = append(files, filepath.Join(b, "uidstate"),
			filepath.Join(b, "uidvalidity"), filepath.Join(b, "keywords"))
	}
	for _, f := range files {
		switch i % 3 {
		case 0:
			os.Remove(f)
		case 1:
			os.WriteFile(f, []byte("\x00garbage\xff"), 0o600)
		case 2:
			os.WriteFile(f, nil, 0o600)
		}
	}
}

// seconds cuts internal dates to what a file name keeps, and what IMAP
// shows.
func seconds(s Snapshot) Snapshot {
	out := s
	out.Messages = nil
	for _, m := range s.Messages {
		m.InternalDate = time.Unix(m.InternalDate.Unix(), 0)
		out.Messages = append(out.Messages, m)
	}
	return out
}

// withoutKeywords drops keywords from a snapshot's flags.
func withoutKeywords(s Snapshot) Snapshot {
	out := s
	out.Messages = nil
	for _, m := range s.Messages {
		var fl []string
		for _, f := range m.Flags {
			if strings.HasPrefix(f, `\`) {
				fl = append(fl, f)
			}
		}
		m.Flags = fl
		out.Messages = append(out.Messages, m)
	}
	return out
}

func TestALostIndexIsRebuiltAtLoginKeepingUIDsAndFlags(t *testing.T) {
	const n = 100
	ctx := context.Background()
	tests := []struct {
		name    string
		restart bool // damage while stopped, else while running
	}{
		{"damaged while the server runs", false},
		{"damaged while the server is stopped", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			st := openStore(t, dir)
			want := fillAccounts(t, st, n)
			for i := range n {
				damageIndex(t, dir, fmt.Sprintf("acct-%03d", i), i)
			}
			problems, err := CheckIndex(dir, "acct-000")
			if err != nil || len(problems) == 0 {
				t.Errorf("check of a damaged index: %q, %v; want problems", problems, err)
			}

			logs := &logBuffer{}
			if tt.restart {
				st.Close()
				st, err = Open(dir, slog.New(slog.NewTextHandler(logs, nil)))
				if err != nil {
					t.Fatal(err)
				}
			} else {
				st.log = slog.New(slog.NewTextHandler(logs, nil))
			}
			for i := range n {
				id := fmt.Sprintf("acct-%03d", i)
				if err := st.EnsureAccount(ctx, id); err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(logs.String(), "index rebuilt") ||
					!strings.Contains(logs.String(), "account="+id) {
					t.Fatalf("%s: no \"index rebuilt\" line naming it in:\n%s", id, logs)
				}
				for _, box := range []string{Inbox, "Trash"} {
					got, err := st.Messages(ctx, id, box)
					if err != nil {
						t.Fatal(err)
					}
					w := want[id+"/"+box]
					if tt.restart {
						// Keywords live only in the keywords file.
						got, w = withoutKeywords(got), withoutKeywords(w)
					}
					if got, w = seconds(got), seconds(w); !reflect.DeepEqual(got, w) {
						t.Fatalf("%s %s after the rebuild:\n%+v\nwant\n%+v", id, box, got, w)
					}
				}
				if p, _ := CheckIndex(dir, id); len(p) != 0 {
					t.Errorf("%s still has problems after login: %q", id, p)
				}
			}

			// New UIDs continue above the old ones, in a new mailbox
			// too a greater UIDVALIDITY.
			res, _ := st.Deliver(ctx, "after", []string{"acct-007"}, strings.NewReader("x\r\n"))
			if res[0].UID != 4 {
				t.Errorf("delivery after the rebuild got UID %d, want 4", res[0].UID)
			}
			st.Create(ctx, "acct-007", "New")
			info, _ := st.Status(ctx, "acct-007", "New")
			if info.UIDValidity <= want["acct-007/Trash"].UIDValidity {
				t.Errorf("a new mailbox got UIDVALIDITY %d, not above the old ones", info.UIDValidity)
			}
		})
	}
}

func TestNamesWithoutUIDValidityGetItAtLoad(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	st := openStore(t, dir)
	deliver(t, st, "a", "a\r\n")
	before, _ := st.Messages(ctx, acct, Inbox)
	st.Close()

	// A file named the way the store named them before.
	newDir := filepath.Join(inboxDir(dir), "new")
	entries, _ := os.ReadDir(newDir)
	old := entries[0].Name()
	short := old[:strings.Index(old, ",V=")]
	os.Rename(filepath.Join(newDir, old), filepath.Join(newDir, short))

	st = openStore(t, dir)
	after, _ := st.Messages(ctx, acct, Inbox)
	if !reflect.DeepEqual(seconds(after), seconds(before)) {
		t.Fatalf("after load %+v, want %+v", after, before)
	}
	if _, err := os.Stat(filepath.Join(newDir, old)); err != nil {
		t.Errorf("the name did not get its UIDVALIDITY back: %v", err)
	}
}

func TestRebuildIndexAnswersWhatItWrote(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	deliver(t, st, "a", "a\r\n")
	st.Close()
	os.Remove(filepath.Join(inboxDir(dir), "uidstate"))

	ids, err := AccountIDs(dir)
	if err != nil || !reflect.DeepEqual(ids, []string{acct}) {
		t.Fatalf("accounts %q, %v", ids, err)
	}
	st = openStore(t, dir)
	got, err := st.RebuildIndex(context.Background(), acct)
	if err != nil || !reflect.DeepEqual(got, []string{"INBOX/uidstate"}) {
		t.Errorf("rebuild wrote %q, %v; want [INBOX/uidstate]", got, err)
	}
	got, err = st.RebuildIndex(context.Background(), acct)
	if err != nil || len(got) != 0 {
		t.Errorf("a second rebuild wrote %q, %v; want nothing", got, err)
	}
}

// TestCheckIndexOfALiveStore checks that mail delivered since uidstate
// was last written is not reported as damage: deliveries leave
// uidstate behind on purpose, and a check run on a serving back (as
// scripts/restore and operators do) must not cry wolf.
func TestCheckIndexOfALiveStore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := openStore(t, dir)
	for i := range 5 {
		if _, err := st.Deliver(ctx, fmt.Sprintf("live-%d", i), []string{"acct-live"},
			strings.NewReader(fmt.Sprintf("Subject: %d\r\n\r\nbody\r\n", i))); err != nil {
			t.Fatal(err)
		}
	}
	if p, err := CheckIndex(dir, "acct-live"); err != nil || len(p) != 0 {
		t.Fatalf("check of a live, healthy store: %q, %v; want no problems", p, err)
	}

}
