package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

const acct = "0b7e3c52-acct-1"

func openStore(t testing.TB, dir string) *Store {
	t.Helper()
	st, err := Open(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func deliver(t testing.TB, st *Store, id, body string) uint32 {
	t.Helper()
	res, err := st.Deliver(context.Background(), id, []string{acct}, bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	return res[0].UID
}

func readMessage(t testing.TB, st *Store, mailbox string, uid uint32) string {
	t.Helper()
	f, _, err := st.OpenMessage(context.Background(), acct, mailbox, uid)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func uids(s Snapshot) []uint32 {
	var l []uint32
	for _, m := range s.Messages {
		l = append(l, m.UID)
	}
	return l
}

func TestEveryAccountStartsWithTheDefaultMailboxes(t *testing.T) {
	st := openStore(t, t.TempDir())
	if err := st.EnsureAccount(context.Background(), acct); err != nil {
		t.Fatal(err)
	}
	sum, err := st.Summary(context.Background(), acct)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"INBOX": "", "Sent": `\Sent`, "Drafts": `\Drafts`, "Trash": `\Trash`}
	if len(sum) != len(want) {
		t.Fatalf("mailboxes = %+v", sum)
	}
	for _, in := range sum {
		use, ok := want[in.Name]
		if !ok || use != in.SpecialUse || !in.Subscribed {
			t.Errorf("mailbox %+v, want special use %q and subscribed", in, use)
		}
	}
	if sum[0].Name != Inbox {
		t.Errorf("first mailbox is %q, want INBOX", sum[0].Name)
	}
}

func TestStateSurvivesReopening(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	st := openStore(t, dir)
	for i := range 4 {
		deliver(t, st, fmt.Sprintf("q%d", i), fmt.Sprintf("Subject: %d\r\n\r\nbody %d\r\n", i, i))
	}
	if _, err := st.StoreFlags(ctx, acct, Inbox, []uint32{1, 2}, FlagsAdd, []string{`\Seen`, "$Label1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.StoreFlags(ctx, acct, Inbox, []uint32{4}, FlagsAdd, []string{`\Deleted`}); err != nil {
		t.Fatal(err)
	}
	if got, err := st.Expunge(ctx, acct, Inbox, nil); err != nil || !slices.Equal(got, []uint32{4}) {
		t.Fatalf("expunge = %v, %v; want [4]", got, err)
	}
	before, err := st.Messages(ctx, acct, Inbox)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()

	st = openStore(t, dir)
	after, err := st.Messages(ctx, acct, Inbox)
	if err != nil {
		t.Fatal(err)
	}
	if after.UIDValidity != before.UIDValidity {
		t.Errorf("UIDVALIDITY %d became %d", before.UIDValidity, after.UIDValidity)
	}
	if after.UIDNext != 5 {
		t.Errorf("UIDNEXT after expunging the highest UID and reopening = %d, want 5", after.UIDNext)
	}
	if !slices.Equal(uids(after), []uint32{1, 2, 3}) {
		t.Errorf("UIDs = %v, want [1 2 3]", uids(after))
	}
	for i, m := range after.Messages {
		if !slices.Equal(m.Flags, before.Messages[i].Flags) {
			t.Errorf("uid %d flags %v became %v", m.UID, before.Messages[i].Flags, m.Flags)
		}
	}
	if !slices.Contains(after.Messages[0].Flags, "$Label1") || !slices.Contains(after.Messages[0].Flags, `\Seen`) {
		t.Errorf("uid 1 flags = %v, want \\Seen and $Label1", after.Messages[0].Flags)
	}
	if got := deliver(t, st, "q-new", "Subject: new\r\n\r\n"); got != 5 {
		t.Errorf("next delivery got UID %d, want 5", got)
	}
	if got := readMessage(t, st, Inbox, 2); got != "Subject: 1\r\n\r\nbody 1\r\n" {
		t.Errorf("message 2 reads %q", got)
	}
}

func TestIndexIsRebuiltFromFilesAlone(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	st := openStore(t, dir)
	deliver(t, st, "a", "A\r\n")
	deliver(t, st, "b", "B\r\n")
	st.StoreFlags(ctx, acct, Inbox, []uint32{2}, FlagsSet, []string{`\Flagged`})
	st.Close()

	// Lose the derived state: only the message files remain.
	box := filepath.Join(dir, "accounts", acct, "mailboxes", "INBOX")
	os.Remove(filepath.Join(box, "uidstate"))
	// A file from another Maildir writer appears too.
	os.WriteFile(filepath.Join(box, "new", "1700000000.M1P1.host"), []byte("C\r\n"), 0o600)

	st = openStore(t, dir)
	snap, err := st.Messages(ctx, acct, Inbox)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(uids(snap), []uint32{1, 2, 3}) {
		t.Fatalf("UIDs after rebuild = %v, want [1 2 3]", uids(snap))
	}
	if !slices.Equal(snap.Messages[1].Flags, []string{`\Flagged`}) {
		t.Errorf("flags after rebuild = %v", snap.Messages[1].Flags)
	}
	if got := readMessage(t, st, Inbox, 3); got != "C\r\n" {
		t.Errorf("adopted message reads %q", got)
	}
}

func TestDeliveryWithAKnownIDIsDroppedAsDuplicate(t *testing.T) {
	st := openStore(t, t.TempDir())
	ctx := context.Background()
	first, err := st.Deliver(ctx, "queue-42", []string{acct, "other"}, bytes.NewBufferString("x\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := st.Deliver(ctx, "queue-42", []string{acct, "other"}, bytes.NewBufferString("x\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range again {
		if !again[i].Duplicate || again[i].UID != first[i].UID {
			t.Errorf("second delivery = %+v, want duplicate of %+v", again[i], first[i])
		}
	}
	for _, a := range []string{acct, "other"} {
		in, _ := st.Status(ctx, a, Inbox)
		if in.Total != 1 {
			t.Errorf("account %s INBOX holds %d messages, want 1", a, in.Total)
		}
	}
}

func TestMailboxOperations(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		run  func(t *testing.T, st *Store)
	}{
		{"creating a nested mailbox creates its parents", func(t *testing.T, st *Store) {
			if err := st.Create(ctx, acct, "Projects/2026/A320"); err != nil {
				t.Fatal(err)
			}
			for _, n := range []string{"Projects", "Projects/2026", "Projects/2026/A320"} {
				if _, err := st.Status(ctx, acct, n); err != nil {
					t.Errorf("%s: %v", n, err)
				}
			}
		}},
		{"creating an existing mailbox fails", func(t *testing.T, st *Store) {
			if err := st.Create(ctx, acct, "inbox"); !errors.Is(err, ErrMailboxExists) {
				t.Errorf("err = %v, want ErrMailboxExists", err)
			}
		}},
		{"names with wildcards or empty levels are refused", func(t *testing.T, st *Store) {
			for _, n := range []string{"a*", "a%b", "a//b", "/a", "a/", ""} {
				if err := st.Create(ctx, acct, n); !errors.Is(err, ErrBadName) {
					t.Errorf("%q: err = %v, want ErrBadName", n, err)
				}
			}
		}},
		{"INBOX cannot be deleted", func(t *testing.T, st *Store) {
			if err := st.Delete(ctx, acct, "INBOX"); !errors.Is(err, ErrNotAllowed) {
				t.Errorf("err = %v, want ErrNotAllowed", err)
			}
		}},
		{"a mailbox recreated after delete gets a new UIDVALIDITY", func(t *testing.T, st *Store) {
			st.Create(ctx, acct, "Tmp")
			old, _ := st.Status(ctx, acct, "Tmp")
			if err := st.Delete(ctx, acct, "Tmp"); err != nil {
				t.Fatal(err)
			}
			st.Create(ctx, acct, "Tmp")
			now, _ := st.Status(ctx, acct, "Tmp")
			if now.UIDValidity <= old.UIDValidity {
				t.Errorf("UIDVALIDITY %d then %d, want it to grow", old.UIDValidity, now.UIDValidity)
			}
		}},
		{"renaming moves children and keeps messages", func(t *testing.T, st *Store) {
			st.Create(ctx, acct, "Old/Child")
			st.Append(ctx, acct, "Old/Child", bytes.NewBufferString("m\r\n"), nil, time.Time{})
			if err := st.Rename(ctx, acct, "Old", "New/Place"); err != nil {
				t.Fatal(err)
			}
			in, err := st.Status(ctx, acct, "New/Place/Child")
			if err != nil || in.Total != 1 {
				t.Errorf("child after rename: %+v, %v", in, err)
			}
			if _, err := st.Status(ctx, acct, "Old"); !errors.Is(err, ErrNoMailbox) {
				t.Errorf("old name still there: %v", err)
			}
		}},
		{"renaming INBOX moves its messages and leaves it empty", func(t *testing.T, st *Store) {
			deliver(t, st, "r1", "r1\r\n")
			if err := st.Rename(ctx, acct, "INBOX", "Archive"); err != nil {
				t.Fatal(err)
			}
			inbox, _ := st.Status(ctx, acct, Inbox)
			arch, _ := st.Status(ctx, acct, "Archive")
			if inbox.Total != 0 || arch.Total != 1 {
				t.Errorf("INBOX %d, Archive %d messages; want 0 and 1", inbox.Total, arch.Total)
			}
		}},
		{"subscriptions can name removed mailboxes until unsubscribed", func(t *testing.T, st *Store) {
			st.Create(ctx, acct, "S")
			st.Subscribe(ctx, acct, "S", true)
			st.Delete(ctx, acct, "S")
			subs, _ := st.Subscriptions(ctx, acct)
			if !slices.Contains(subs, "S") {
				t.Errorf("subscriptions = %v", subs)
			}
			st.Subscribe(ctx, acct, "S", false)
			subs, _ = st.Subscriptions(ctx, acct)
			if slices.Contains(subs, "S") {
				t.Errorf("subscriptions after unsubscribe = %v", subs)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t, openStore(t, t.TempDir()))
		})
	}
}

func TestCopyMoveAndExpunge(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, t.TempDir())
	deliver(t, st, "1", "one\r\n")
	deliver(t, st, "2", "two\r\n")
	st.StoreFlags(ctx, acct, Inbox, []uint32{1}, FlagsAdd, []string{`\Seen`, "work"})

	var changes []Change
	_, cancel, err := st.Watch(ctx, acct, "Trash", func(c Change) { changes = append(changes, c) })
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()

	res, err := st.Copy(ctx, acct, Inbox, []uint32{1, 2, 99}, "Trash")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Source, []uint32{1, 2}) || !slices.Equal(res.Dest, []uint32{1, 2}) {
		t.Errorf("copy result %+v", res)
	}
	trash, _ := st.Messages(ctx, acct, "Trash")
	if !slices.Contains(trash.Messages[0].Flags, "work") || !slices.Contains(trash.Messages[0].Flags, `\Seen`) {
		t.Errorf("copy lost flags: %v", trash.Messages[0].Flags)
	}
	if readMessage(t, st, "Trash", 2) != "two\r\n" {
		t.Error("copied message reads differently")
	}

	res, err = st.Move(ctx, acct, Inbox, []uint32{2}, "Trash")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Dest, []uint32{3}) {
		t.Errorf("move gave UIDs %v, want [3]", res.Dest)
	}
	inbox, _ := st.Messages(ctx, acct, Inbox)
	if !slices.Equal(uids(inbox), []uint32{1}) {
		t.Errorf("INBOX after move = %v", uids(inbox))
	}

	st.StoreFlags(ctx, acct, "Trash", []uint32{1, 3}, FlagsAdd, []string{`\Deleted`})
	got, err := st.Expunge(ctx, acct, "Trash", []uint32{3})
	if err != nil || !slices.Equal(got, []uint32{3}) {
		t.Errorf("UID EXPUNGE 3 = %v, %v", got, err)
	}
	trash, _ = st.Messages(ctx, acct, "Trash")
	if !slices.Equal(uids(trash), []uint32{1, 2}) {
		t.Errorf("Trash = %v, want [1 2]", uids(trash))
	}

	var kinds []ChangeKind
	for _, c := range changes {
		kinds = append(kinds, c.Kind)
	}
	want := []ChangeKind{Added, Added, Added, FlagsChanged, FlagsChanged, Expunged}
	if !slices.Equal(kinds, want) {
		t.Errorf("watcher saw %v, want %v", kinds, want)
	}
}

func TestFlagOperations(t *testing.T) {
	tests := []struct {
		name  string
		start []string
		op    FlagOp
		flags []string
		want  []string
	}{
		{"adding seen to nothing", nil, FlagsAdd, []string{`\seen`}, []string{`\Seen`}},
		{"setting replaces everything", []string{`\Seen`, "a"}, FlagsSet, []string{`\Flagged`}, []string{`\Flagged`}},
		{"removing one keeps the others", []string{`\Seen`, `\Answered`, "a", "b"}, FlagsRemove, []string{`\SEEN`, "A"}, []string{`\Answered`, "b"}},
		{"recent cannot be stored", nil, FlagsAdd, []string{`\Recent`}, nil},
		{"forwarded keeps its maildir letter", nil, FlagsAdd, []string{"$forwarded"}, []string{"$Forwarded"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := flagSet{}.apply(FlagsSet, tt.start).apply(tt.op, tt.flags).list()
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestConcurrentDeliveriesGetDistinctUIDs(t *testing.T) {
	st := openStore(t, t.TempDir())
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			_, err := st.Deliver(context.Background(), fmt.Sprint("c", i), []string{acct}, bytes.NewBufferString("x\r\n"))
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	snap, _ := st.Messages(context.Background(), acct, Inbox)
	if len(snap.Messages) != 20 || snap.UIDNext != 21 {
		t.Errorf("%d messages, UIDNEXT %d; want 20 and 21", len(snap.Messages), snap.UIDNext)
	}
}

func TestMailboxNamesAreEscapedOnDisk(t *testing.T) {
	for _, name := range []string{"a/b", "100%", ".hidden", "报告/二〇二六"} {
		esc := escapeName(name)
		back, err := unescapeName(esc)
		if err != nil || back != name {
			t.Errorf("%q -> %q -> %q, %v", name, esc, back, err)
		}
		if bytes.ContainsAny([]byte(esc), "/") || esc[0] == '.' {
			t.Errorf("%q escaped to unsafe %q", name, esc)
		}
	}
}

func BenchmarkDeliver10KB(b *testing.B) {
	st := openStore(b, b.TempDir())
	msg := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n"), 140)
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := st.Deliver(context.Background(), fmt.Sprint("b", i), []string{acct}, bytes.NewReader(msg)); err != nil {
			b.Fatal(err)
		}
	}
}
