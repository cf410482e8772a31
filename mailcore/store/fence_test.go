package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func openFenced(t *testing.T, dir string, f Fence) *Store {
	t.Helper()
	st, err := OpenShared(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Take(f); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestFencedStoreRefusesWritesOnceANewerHolderOpensTheFolder(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	lost := make(chan struct{}, 1)
	old := openFenced(t, dir, Fence{Number: 1, Lost: func() { lost <- struct{}{} }})
	deliver(t, old, "q-before", "Subject: before\r\n\r\nbody\r\n")

	// The new holder reads the folder from disk: the old holder's
	// delivery is there, and a retry of it is dropped as a duplicate.
	cur := openFenced(t, dir, Fence{Number: 2})
	res, err := cur.Deliver(ctx, "q-before", []string{acct}, bytes.NewBufferString("Subject: before\r\n\r\nbody\r\n"))
	if err != nil || !res[0].Duplicate {
		t.Fatalf("retry on the new holder = %+v, %v; want a duplicate", res, err)
	}

	refusals := map[string]func() error{
		"delivery": func() error {
			_, err := old.Deliver(ctx, "q-late", []string{acct}, bytes.NewBufferString("Subject: late\r\n\r\nx\r\n"))
			return err
		},
		"append": func() error {
			_, _, err := old.Append(ctx, acct, Inbox, strings.NewReader("Subject: a\r\n\r\nx\r\n"), nil, time.Time{})
			return err
		},
		"flag change": func() error {
			_, err := old.StoreFlags(ctx, acct, Inbox, []uint32{1}, FlagsAdd, []string{`\Seen`})
			return err
		},
		"expunge": func() error {
			_, err := old.Expunge(ctx, acct, Inbox, []uint32{1})
			return err
		},
		"create":  func() error { return old.Create(ctx, acct, "Projects") },
		"copy":    func() error { _, err := old.Copy(ctx, acct, Inbox, []uint32{1}, "Trash"); return err },
		"removal": func() error { return old.RemoveAccount(ctx, acct) },
	}
	for name, do := range refusals {
		if err := do(); !errors.Is(err, ErrFenced) {
			t.Errorf("%s by the former holder = %v, want ErrFenced", name, err)
		}
	}
	select {
	case <-lost:
	case <-time.After(time.Second):
		t.Error("the former holder was not told it lost the folder")
	}

	// Nothing the former holder tried reached the disk.
	snap, err := cur.Messages(ctx, acct, Inbox)
	if err != nil || len(snap.Messages) != 1 {
		t.Fatalf("INBOX on the new holder: %d messages, %v; want the one delivered before", len(snap.Messages), err)
	}
	if snap.Messages[0].Flags != nil && len(snap.Messages[0].Flags) > 0 {
		t.Errorf("flags changed by the former holder: %v", snap.Messages[0].Flags)
	}
	if _, err := os.Stat(filepath.Join(dir, "accounts", acct, "mailboxes", "Projects")); err == nil {
		t.Error("mailbox created by the former holder")
	}
	b, _ := os.ReadFile(filepath.Join(dir, "fence"))
	if string(b) != "2\n" {
		t.Errorf("fence file holds %q, want 2", b)
	}

	// The new holder records its fence with the changes it writes.
	if err := cur.Create(ctx, acct, "Projects"); err != nil {
		t.Fatal(err)
	}
	st, _ := os.ReadFile(filepath.Join(dir, "accounts", acct, "mailboxes", "Projects", "uidstate"))
	if !strings.Contains(string(st), "fence 2\n") {
		t.Errorf("uidstate %q records no fence 2", st)
	}
}

func TestFencedStoreOpenRefusesALowerFence(t *testing.T) {
	dir := t.TempDir()
	openFenced(t, dir, Fence{Number: 5})
	st, err := OpenShared(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Take(Fence{Number: 4}); !errors.Is(err, ErrFenced) {
		t.Fatalf("take under a lower fence = %v, want ErrFenced", err)
	}
	if err := st.EnsureAccount(context.Background(), acct); !errors.Is(err, ErrFenced) {
		t.Fatalf("login on a store never taken = %v, want ErrFenced", err)
	}
}

func TestSharedStoreStandsByAndTakesOverWithAFreshIndex(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	a := openFenced(t, dir, Fence{Number: 1})
	deliver(t, a, "q-1", "Subject: one\r\n\r\nx\r\n")
	if _, err := a.Messages(ctx, acct, Inbox); err != nil {
		t.Fatal(err)
	}
	a.Stand()
	if _, err := a.Messages(ctx, acct, Inbox); !errors.Is(err, ErrFenced) {
		t.Fatalf("read while standing by = %v, want ErrFenced", err)
	}

	// Another member writes meanwhile; a's index in memory is stale.
	b := openFenced(t, dir, Fence{Number: 2})
	deliver(t, b, "q-2", "Subject: two\r\n\r\nx\r\n")
	b.Stand()

	if err := a.Take(Fence{Number: 3}); err != nil {
		t.Fatal(err)
	}
	uid := deliver(t, a, "q-3", "Subject: three\r\n\r\nx\r\n")
	snap, err := a.Messages(ctx, acct, Inbox)
	if err != nil || len(snap.Messages) != 3 || uid != 3 {
		t.Fatalf("after taking over again: %d messages, new UID %d, %v; want 3 and UID 3", len(snap.Messages), uid, err)
	}
}

func TestFencedStoreAsksItsLeaseBeforeEveryChange(t *testing.T) {
	dir := t.TempDir()
	var sure error
	st := openFenced(t, dir, Fence{Number: 1, Holding: func() error { return sure }})
	deliver(t, st, "q-1", "Subject: one\r\n\r\nx\r\n")
	sure = errors.New("lease not renewed for 6s")
	_, err := st.Deliver(context.Background(), "q-2", []string{acct}, strings.NewReader("Subject: two\r\n\r\nx\r\n"))
	if !errors.Is(err, ErrFenced) {
		t.Fatalf("delivery with the lease unsure = %v, want ErrFenced", err)
	}
}

// gatedReader gives its bytes once open is closed, as a client whose
// upload stalls.
type gatedReader struct {
	open <-chan struct{}
	r    io.Reader
}

func (g *gatedReader) Read(p []byte) (int, error) {
	<-g.open
	return g.r.Read(p)
}

func TestAppendWhoseUploadOutlastsATakeoverStoresNothing(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	old := openFenced(t, dir, Fence{Number: 1})
	deliver(t, old, "q-1", "Subject: one\r\n\r\nx\r\n")

	// The append starts on the old holder; its body arrives only once
	// another member has taken the folder over.
	open := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		body := &gatedReader{open: open, r: strings.NewReader("Subject: late append\r\n\r\nx\r\n")}
		_, _, err := old.Append(ctx, acct, Inbox, body, nil, time.Time{})
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	cur := openFenced(t, dir, Fence{Number: 2})
	close(open)
	if err := <-done; !errors.Is(err, ErrFenced) {
		t.Fatalf("append finished after the takeover = %v, want ErrFenced", err)
	}

	snap, err := cur.Messages(ctx, acct, Inbox)
	if err != nil || len(snap.Messages) != 1 {
		t.Fatalf("INBOX on the new holder: %d messages, %v; want only the one delivered before", len(snap.Messages), err)
	}
	for _, sub := range []string{"cur", "new", "tmp"} {
		files, _ := filepath.Glob(filepath.Join(dir, "accounts", acct, "mailboxes", "INBOX", sub, "*"))
		if sub != "new" && len(files) > 0 {
			t.Errorf("INBOX/%s holds %q after the refused append", sub, files)
		}
	}
}

func TestTakeRefusesAFolderThatIsNotTheLeasesStore(t *testing.T) {
	ctx := context.Background()
	shared := t.TempDir()
	first := openFenced(t, shared, Fence{Number: 1})
	id := first.ID()
	if len(id) != 32 {
		t.Fatalf("first holder's store id %q", id)
	}
	deliver(t, first, "q-1", "Subject: one\r\n\r\nx\r\n")
	first.Stand()

	// The standby's folder is an empty mount point: it is refused and
	// left as it was.
	empty := t.TempDir()
	st, err := OpenShared(empty, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	err = st.Take(Fence{Number: 2, StoreID: id})
	if !errors.Is(err, ErrWrongFolder) || !strings.Contains(err.Error(), empty) ||
		!strings.Contains(err.Error(), "mount") {
		t.Fatalf("take of an empty folder = %v; want ErrWrongFolder naming the folder and the mount", err)
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Errorf("the refused folder was written to: %v", entries)
	}
	if err := st.EnsureAccount(ctx, acct); !errors.Is(err, ErrFenced) {
		t.Errorf("login on the refused folder = %v, want ErrFenced", err)
	}

	// Another store's folder is refused too.
	other := openFenced(t, t.TempDir(), Fence{Number: 1})
	if err := st.Take(Fence{Number: 2, StoreID: other.ID()}); !errors.Is(err, ErrWrongFolder) {
		t.Fatalf("take under another store's id = %v, want ErrWrongFolder", err)
	}

	// The right folder serves, with its mail.
	back := openFenced(t, shared, Fence{Number: 3, StoreID: id})
	if snap, err := back.Messages(ctx, acct, Inbox); err != nil || len(snap.Messages) != 1 {
		t.Fatalf("the shared folder after a takeover: %d messages, %v", len(snap.Messages), err)
	}
	if back.ID() != id {
		t.Errorf("store id %q after a takeover, want %q", back.ID(), id)
	}

	// A lease that records no id adopts the id the folder has.
	back.Stand()
	again := openFenced(t, shared, Fence{Number: 4})
	if again.ID() != id {
		t.Errorf("store id %q adopted, want the folder's %q", again.ID(), id)
	}
}

func TestAMissingOrDamagedFenceFileStopsTheHolder(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	broken := make(chan error, 1)
	st := openFenced(t, dir, Fence{Number: 1, Broken: func(err error) { broken <- err }})
	deliver(t, st, "q-1", "Subject: one\r\n\r\nx\r\n")
	fence := filepath.Join(dir, "fence")
	if err := os.Remove(fence); err != nil {
		t.Fatal(err)
	}
	err := st.Verify()
	if !errors.Is(err, ErrFenceFile) || errors.Is(err, ErrFenced) || !strings.Contains(err.Error(), fence) {
		t.Fatalf("check with the fence file gone = %v; want ErrFenceFile naming %s", err, fence)
	}
	select {
	case got := <-broken:
		if !errors.Is(got, ErrFenceFile) {
			t.Errorf("Broken told %v", got)
		}
	case <-time.After(time.Second):
		t.Fatal("the holder was not told its fence file is gone")
	}
	if _, err := st.Messages(ctx, acct, Inbox); err == nil {
		t.Fatal("the holder serves with its fence file gone")
	}

	// The next holder writes a new fence file and serves.
	next := openFenced(t, dir, Fence{Number: 2, StoreID: st.ID()})
	if snap, err := next.Messages(ctx, acct, Inbox); err != nil || len(snap.Messages) != 1 {
		t.Fatalf("the next holder: %d messages, %v", len(snap.Messages), err)
	}

	// A damaged one is not overwritten: it may be the volume failing.
	next.Stand()
	if err := os.WriteFile(fence, []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	third, err := OpenShared(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	err = third.Take(Fence{Number: 3, StoreID: st.ID()})
	if !errors.Is(err, ErrFenceFile) || !strings.Contains(err.Error(), "remove the file") {
		t.Fatalf("take over a damaged fence file = %v; want ErrFenceFile saying how to mend it", err)
	}
}

// TestCopyAndMoveStopAtTheFileWhereTheLeaseIsLost checks that a COPY,
// MOVE or EXPUNGE of many messages, running when the node loses its
// lease, stops touching the shared folder at the next file rather than
// finishing behind the new holder's back.
func TestCopyAndMoveStopAtTheFileWhereTheLeaseIsLost(t *testing.T) {
	ctx := context.Background()
	const n, allowed = 40, 5
	files := func(dir, box string) int {
		var count int
		for _, sub := range []string{"cur", "new"} {
			f, _ := filepath.Glob(filepath.Join(dir, "accounts", acct, "mailboxes", box, sub, "*"))
			count += len(f)
		}
		return count
	}
	for _, op := range []string{"copy", "move", "expunge"} {
		t.Run(op, func(t *testing.T) {
			dir := t.TempDir()
			// Holding answers well a given number of times, then says
			// the lease is gone, as when a takeover lands mid-command.
			left := -1
			st := openFenced(t, dir, Fence{Number: 1, Holding: func() error {
				if left == 0 {
					return errors.New("lease lost")
				}
				if left > 0 {
					left--
				}
				return nil
			}})
			for i := range n {
				deliver(t, st, "q-"+strings.Repeat("x", i+1), "Subject: m\r\n\r\nx\r\n")
			}
			if err := st.Create(ctx, acct, "Dst"); err != nil {
				t.Fatal(err)
			}
			uids := make([]uint32, n)
			for i := range uids {
				uids[i] = uint32(i + 1)
			}
			if op == "expunge" {
				if _, err := st.StoreFlags(ctx, acct, Inbox, uids, FlagsAdd, []string{FlagDeleted}); err != nil {
					t.Fatal(err)
				}
			}

			left = allowed
			var err error
			switch op {
			case "copy":
				_, err = st.Copy(ctx, acct, Inbox, uids, "Dst")
			case "move":
				_, err = st.Move(ctx, acct, Inbox, uids, "Dst")
			case "expunge":
				_, err = st.Expunge(ctx, acct, Inbox, nil)
			}
			if !errors.Is(err, ErrFenced) {
				t.Fatalf("%s after the lease was lost = %v, want ErrFenced", op, err)
			}
			switch op {
			case "copy", "move":
				if got := files(dir, "Dst"); got >= n || got > allowed {
					t.Errorf("%s placed %d of %d files after losing the lease at the %dth check", op, got, n, allowed)
				}
			case "expunge":
				if got := files(dir, Inbox); got < n-allowed {
					t.Errorf("expunge removed %d of %d files after losing the lease", n-got, n)
				}
			}
		})
	}
}
