package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func inboxDir(dir string) string {
	return filepath.Join(dir, "accounts", acct, "mailboxes", "INBOX")
}

func TestDeliveryIDsThatLookAlikeAreNotDuplicates(t *testing.T) {
	st := openStore(t, t.TempDir())
	long := strings.Repeat("q", 70)
	ids := []string{"a.b", "a_b", "a/b", "a b", long + "1", long + "2",
		strings.Repeat("\xff", 200), strings.Repeat("\xfe", 200)}
	for _, id := range ids {
		res, err := st.Deliver(context.Background(), id, []string{acct}, bytes.NewBufferString(id))
		if err != nil {
			t.Fatal(err)
		}
		if res[0].Duplicate {
			t.Errorf("delivery %q taken for a duplicate of an earlier id", id)
		}
	}
	// The same id again is a duplicate, also after a restart.
	st.Close()
	st2 := openStore(t, st.dir)
	for _, id := range ids {
		res, err := st2.Deliver(context.Background(), id, []string{acct}, bytes.NewBufferString(id))
		if err != nil {
			t.Fatal(err)
		}
		if !res[0].Duplicate {
			t.Errorf("redelivery of %q after a restart stored a second copy", id)
		}
	}
}

func TestDamagedUIDStateKeepsUIDValidityAndUIDs(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, box string)
	}{
		{"uidstate cut short", func(t *testing.T, box string) {
			p := filepath.Join(box, "uidstate")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)-4], 0o600)
		}},
		{"uidstate garbage", func(t *testing.T, box string) {
			os.WriteFile(filepath.Join(box, "uidstate"), []byte("\x00\x00\x00\x00"), 0o600)
		}},
		{"uidstate empty", func(t *testing.T, box string) {
			os.WriteFile(filepath.Join(box, "uidstate"), nil, 0o600)
		}},
		{"uidstate gone", func(t *testing.T, box string) {
			os.Remove(filepath.Join(box, "uidstate"))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ctx := context.Background()
			st := openStore(t, dir)
			for _, id := range []string{"a", "b", "c", "d"} {
				deliver(t, st, id, id+"\r\n")
			}
			// A keyword on UID 4, then 4 is expunged: its UID must not
			// come back even without uidstate.
			st.StoreFlags(ctx, acct, Inbox, []uint32{4}, FlagsAdd, []string{`\Deleted`})
			st.StoreFlags(ctx, acct, Inbox, []uint32{2}, FlagsAdd, []string{"$Work"})
			before, _ := st.Messages(ctx, acct, Inbox)
			st.Close()
			// Expunge 4 by hand, the keywords file still naming 2.
			os.Remove(filepath.Join(inboxDir(dir), "cur", mustFind(t, inboxDir(dir), "U4.")))

			tt.damage(t, inboxDir(dir))
			st = openStore(t, dir)
			after, err := st.Messages(ctx, acct, Inbox)
			if err != nil {
				t.Fatal(err)
			}
			if after.UIDValidity != before.UIDValidity {
				t.Errorf("UIDVALIDITY %d became %d", before.UIDValidity, after.UIDValidity)
			}
			if !slices.Equal(uids(after), []uint32{1, 2, 3}) {
				t.Errorf("UIDs %v, want [1 2 3]", uids(after))
			}
			if got := deliver(t, st, "e", "e\r\n"); got < 4 {
				t.Errorf("new delivery got UID %d, reusing one", got)
			}
		})
	}
}

// mustFind answers the name of the one file under box/cur or box/new
// starting with prefix.
func mustFind(t *testing.T, box, prefix string) string {
	t.Helper()
	for _, sub := range []string{"cur", "new"} {
		entries, _ := os.ReadDir(filepath.Join(box, sub))
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), prefix) {
				if sub == "new" {
					os.Rename(filepath.Join(box, sub, e.Name()), filepath.Join(box, "cur", e.Name()+":2,"))
					return e.Name() + ":2,"
				}
				return e.Name()
			}
		}
	}
	t.Fatalf("no file %s* in %s", prefix, box)
	return ""
}

func TestUnreadableUIDStateFailsInsteadOfRebuilding(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	st := openStore(t, dir)
	deliver(t, st, "a", "a\r\n")
	before, _ := st.Messages(ctx, acct, Inbox)
	st.Close()

	// A read error (here EISDIR, through a link that a rename would
	// replace; EIO in the field) is not a missing file.
	p := filepath.Join(inboxDir(dir), "uidstate")
	b, _ := os.ReadFile(p)
	os.Remove(p)
	if err := os.Symlink(t.TempDir(), p); err != nil {
		t.Fatal(err)
	}
	st = openStore(t, dir)
	if _, err := st.Messages(ctx, acct, Inbox); err == nil {
		t.Fatal("account opened although its uidstate cannot be read")
	}
	st.Close()

	os.Remove(p)
	os.WriteFile(p, b, 0o600)
	st = openStore(t, dir)
	after, err := st.Messages(ctx, acct, Inbox)
	if err != nil {
		t.Fatal(err)
	}
	if after.UIDValidity != before.UIDValidity || !slices.Equal(uids(after), []uint32{1}) {
		t.Errorf("after the error: %+v, before %+v", after, before)
	}
}

func TestLeftoversOfAKilledProcessAreNotDelivered(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	st := openStore(t, dir)
	deliver(t, st, "a", "a\r\n")
	st.Close()

	spool := filepath.Join(dir, "tmp", "d-half.1234")
	boxTmp := filepath.Join(inboxDir(dir), "tmp", "a-half")
	for _, p := range []string{spool, boxTmp} {
		if err := os.WriteFile(p, []byte("Subject: half\r\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	gone := filepath.Join(dir, "accounts", acct, "mailboxes", ".deleted-x1")
	os.MkdirAll(filepath.Join(gone, "cur"), 0o700)
	os.WriteFile(filepath.Join(gone, "cur", "U1.1.x,S=1:2,"), []byte("x"), 0o600)

	st = openStore(t, dir)
	snap, err := st.Messages(ctx, acct, Inbox)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(uids(snap), []uint32{1}) {
		t.Errorf("INBOX UIDs %v, want [1]", uids(snap))
	}
	for _, p := range []string{spool, boxTmp, gone} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there", p)
		}
	}
}

func TestSelectedMailboxIsBoundToItsUIDValidity(t *testing.T) {
	st := openStore(t, t.TempDir())
	ctx := context.Background()
	if err := st.Create(ctx, acct, "Work"); err != nil {
		t.Fatal(err)
	}
	var changes []Change
	snap, cancel, err := st.Watch(ctx, acct, "Work", func(c Change) { changes = append(changes, c) })
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	bound := WithUIDValidity(ctx, snap.UIDValidity)

	// Renamed: the bound calls follow the new name.
	if err := st.Rename(ctx, acct, "Work", "Projects"); err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || changes[0].Kind != Renamed || changes[0].Mailbox != "Projects" {
		t.Fatalf("changes after rename = %+v", changes)
	}
	if _, err := st.Messages(bound, acct, "Projects"); err != nil {
		t.Errorf("bound call on the renamed mailbox: %v", err)
	}

	// Another mailbox takes the old name; a bound call must not reach it.
	if err := st.Create(ctx, acct, "Work"); err != nil {
		t.Fatal(err)
	}
	_, uid, err := st.Append(ctx, acct, "Work", strings.NewReader("x\r\n"), []string{`\Deleted`}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Expunge(bound, acct, "Work", nil); !errors.Is(err, ErrNoMailbox) {
		t.Errorf("bound EXPUNGE of the new Work = %v, want ErrNoMailbox", err)
	}
	if _, _, err := st.OpenMessage(bound, acct, "Work", uid); !errors.Is(err, ErrNoMessage) && !errors.Is(err, ErrNoMailbox) {
		t.Errorf("bound read of the new Work = %v", err)
	}
	if s, _ := st.Messages(ctx, acct, "Work"); len(s.Messages) != 1 {
		t.Errorf("new Work holds %d messages, want 1", len(s.Messages))
	}

	// Deleted: the watcher hears it last.
	if err := st.Delete(ctx, acct, "Projects"); err != nil {
		t.Fatal(err)
	}
	if last := changes[len(changes)-1]; last.Kind != Deleted {
		t.Errorf("last change after delete = %+v, want Deleted", last)
	}
}

func TestFailedMoveAndCopyKeepIndexAndFilesInStep(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	st := openStore(t, dir)
	for _, id := range []string{"a", "b", "c"} {
		deliver(t, st, id, id+"\r\n")
	}
	if err := st.Create(ctx, acct, "Dest"); err != nil {
		t.Fatal(err)
	}
	// Message 2's file vanishes behind the store's back.
	os.Remove(filepath.Join(inboxDir(dir), "new", mustFindNew(t, inboxDir(dir), "U2.")))

	if _, err := st.Copy(ctx, acct, Inbox, []uint32{1, 2, 3}, "Dest"); err == nil {
		t.Fatal("copy of a message without a file succeeded")
	}
	dest := filepath.Join(dir, "accounts", acct, "mailboxes", "Dest")
	if n := countFiles(t, dest); n != 0 {
		t.Errorf("failed COPY left %d files in Dest", n)
	}

	if _, err := st.Move(ctx, acct, Inbox, []uint32{1, 2, 3}, "Dest"); err == nil {
		t.Fatal("move of a message without a file succeeded")
	}
	in, _ := st.Messages(ctx, acct, Inbox)
	out, _ := st.Messages(ctx, acct, "Dest")
	if n := countFiles(t, dest); n != len(out.Messages) {
		t.Errorf("Dest has %d files but indexes %d messages", n, len(out.Messages))
	}
	if !slices.Equal(uids(in), []uint32{2, 3}) || len(out.Messages) != 1 {
		t.Errorf("INBOX %v, Dest %v; want [2 3] and message 1 moved", uids(in), uids(out))
	}
	if len(out.Messages) == 1 && readMessage(t, st, "Dest", out.Messages[0].UID) != "a\r\n" {
		t.Error("moved message reads wrong")
	}
}

func mustFindNew(t *testing.T, box, prefix string) string {
	t.Helper()
	entries, _ := os.ReadDir(filepath.Join(box, "new"))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			return e.Name()
		}
	}
	t.Fatalf("no file %s* in %s/new", prefix, box)
	return ""
}

func countFiles(t *testing.T, box string) int {
	t.Helper()
	n := 0
	for _, sub := range []string{"new", "cur", "tmp"} {
		entries, _ := os.ReadDir(filepath.Join(box, sub))
		n += len(entries)
	}
	return n
}

func TestPlaceFileNeverReplacesAMessage(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	dst := filepath.Join(dir, "dst")
	os.WriteFile(src, []byte("new"), 0o600)
	os.WriteFile(dst, []byte("old"), 0o600)
	if err := placeFile(src, dst, dir); err == nil {
		t.Error("placeFile over an existing file succeeded")
	}
	if b, _ := os.ReadFile(dst); string(b) != "old" {
		t.Errorf("existing file now reads %q", b)
	}
}

func TestRenamingInboxIntoAHierarchyMakesTheParents(t *testing.T) {
	st := openStore(t, t.TempDir())
	ctx := context.Background()
	deliver(t, st, "a", "a\r\n")
	if err := st.Rename(ctx, acct, Inbox, "Archive/2024"); err != nil {
		t.Fatal(err)
	}
	for _, box := range []string{"Archive", "Archive/2024", Inbox} {
		if _, err := st.Status(ctx, acct, box); err != nil {
			t.Errorf("%s: %v", box, err)
		}
	}
}

func TestUIDExpungeOfAManyUIDListRemovesOnlyThose(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	st := openStore(t, dir)
	deliver(t, st, "seed", "x\r\n")
	st.Close()

	// 5000 messages marked \Deleted, written as files directly.
	cur := filepath.Join(inboxDir(dir), "cur")
	for uid := 2; uid <= 5001; uid++ {
		name := fmt.Sprintf("U%d.1700000000.x-%d,S=3:2,T", uid, uid)
		if err := os.WriteFile(filepath.Join(cur, name), []byte("x\r\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	st = openStore(t, dir)
	var only []uint32
	for uid := uint32(5001); uid >= 2; uid-- {
		if uid%2 == 0 {
			only = append(only, uid)
		}
	}
	gone, err := st.Expunge(ctx, acct, Inbox, only)
	if err != nil {
		t.Fatal(err)
	}
	if len(gone) != 2500 {
		t.Fatalf("expunged %d, want 2500", len(gone))
	}
	snap, _ := st.Messages(ctx, acct, Inbox)
	if len(snap.Messages) != 2501 {
		t.Errorf("%d messages left, want 2501", len(snap.Messages))
	}
	for _, m := range snap.Messages {
		if m.UID != 1 && m.UID%2 == 0 {
			t.Fatalf("UID %d survived", m.UID)
		}
	}
}

func TestExpungedUIDsStaySpentWhenTheIndexIsLost(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := openStore(t, dir)
	for i := range 3 {
		deliver(t, st, fmt.Sprintf("q%d", i), "Subject: x\r\n\r\nbody\r\n")
	}
	// Expunge the two highest: UIDNEXT stays 4 though only UID 1 is left.
	if _, err := st.StoreFlags(ctx, acct, Inbox, []uint32{2, 3}, FlagsAdd, []string{FlagDeleted}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Expunge(ctx, acct, Inbox, nil); err != nil {
		t.Fatal(err)
	}
	st.Close()

	// Every index file of every mailbox goes.
	boxes, _ := filepath.Glob(filepath.Join(dir, "accounts", "*", "mailboxes", "*"))
	for _, box := range boxes {
		for _, f := range []string{"uidstate", "uidvalidity", "keywords"} {
			os.Remove(filepath.Join(box, f))
		}
	}

	st = openStore(t, dir)
	if uid := deliver(t, st, "q9", "Subject: new\r\n\r\nbody\r\n"); uid != 4 {
		t.Fatalf("after the index was lost a new message got UID %d, want 4: UIDs 2 and 3 were used before", uid)
	}
}
