package store

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRemoveAccountTakesAllItsMailAndOnlyIts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := openStore(t, dir)
	const other = "0b7e3c52-acct-2"
	deliver(t, st, "q1", "Subject: one\r\n\r\nbody\r\n")
	if _, err := st.Deliver(ctx, "q2", []string{other}, strings.NewReader("Subject: two\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}

	var deleted bool
	if _, cancel, err := st.Watch(ctx, acct, Inbox, func(c Change) {
		if c.Kind == Deleted {
			deleted = true
		}
	}); err != nil {
		t.Fatal(err)
	} else {
		defer cancel()
	}

	if err := st.RemoveAccount(ctx, acct); err != nil {
		t.Fatal(err)
	}
	if !deleted {
		t.Error("a session watching INBOX was not told it is gone")
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "accounts"))
	if len(entries) != 1 {
		t.Fatalf("accounts folder holds %d entries after the removal, want the other account only", len(entries))
	}
	if sum, err := st.Summary(ctx, other); err != nil || sum[0].Total != 1 {
		t.Fatalf("the other account: %+v, %v; want its message kept", sum, err)
	}

	// A second removal, as a purge run again after a failure, is fine.
	if err := st.RemoveAccount(ctx, acct); err != nil {
		t.Fatalf("removing twice: %v", err)
	}
	// Delivery under the same id later starts from nothing.
	if s, err := st.Messages(ctx, acct, Inbox); err != nil || len(s.Messages) != 0 {
		t.Fatalf("after removal: %+v, %v; want an empty INBOX", s, err)
	}
}

func TestRemovalCutShortByACrashIsFinishedAtOpen(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	deliver(t, st, "q1", "Subject: one\r\n\r\nbody\r\n")
	st.Close()

	// What a crash after the rename and before RemoveAll leaves.
	accounts := filepath.Join(dir, "accounts")
	entries, _ := os.ReadDir(accounts)
	if err := os.Rename(filepath.Join(accounts, entries[0].Name()), filepath.Join(accounts, removedPrefix+entries[0].Name())); err != nil {
		t.Fatal(err)
	}
	openStore(t, dir)
	if left, _ := os.ReadDir(accounts); len(left) != 0 {
		t.Fatalf("after reopening, accounts holds %v", left)
	}
}
