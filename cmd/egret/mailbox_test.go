package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/mailcore/store"
)

// A back's DELETE of an account's mail answers 400 for what is not an
// account id as the directory writes them, and removes nothing; a
// well-formed id with no folder is 204, the removal being idempotent.
func TestBackMailboxRefusesWhatIsNoAccountID(t *testing.T) {
	ctx := context.Background()
	dir, err := directory.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "egret.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	lc := &directory.Lifecycle{Store: dir, Domain: "egretair.example"}
	u, err := lc.CreateUser(ctx, directory.NewUser{Login: "victim", DisplayName: "受害者",
		Password: "a-long-password-123"})
	if err != nil {
		t.Fatal(err)
	}
	acct := u.Account.ID
	if _, err := lc.DeleteUser(ctx, u.ID, 0); err != nil {
		t.Fatal(err)
	}
	mailDir := t.TempDir()
	mail, err := store.Open(mailDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer mail.Close()
	if _, err := mail.Deliver(ctx, "q1", []string{acct},
		strings.NewReader("Subject: secret\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	folder := filepath.Join(mailDir, "accounts", acct)

	const secret = "a-secret-of-twenty-chars"
	b := &backMailbox{dir: dir, mail: mail, secret: secret, log: slog.Default(),
		sources: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	mux := http.NewServeMux()
	mux.Handle("DELETE "+factsPath+"{account}", b)
	del := func(id string) int {
		r := httptest.NewRequest(http.MethodDelete, factsPath+id, nil)
		r.RemoteAddr = "127.0.0.1:5000"
		r.Header.Set("Authorization", "Bearer "+secret)
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		return w.Code
	}
	for _, id := range []string{strings.ToUpper(acct), "victim", "victim@egretair.example",
		"{" + acct + "}", "urn:uuid:" + acct, strings.ReplaceAll(acct, "-", "")} {
		if got := del(id); got != http.StatusBadRequest {
			t.Errorf("DELETE %q: %d, want 400", id, got)
		}
		if _, err := os.Stat(folder); err != nil {
			t.Fatalf("the account's folder after DELETE %q: %v", id, err)
		}
	}
	if got := del(directory.NewID()); got != http.StatusNoContent {
		t.Errorf("DELETE of a well-formed id with no folder: %d, want 204", got)
	}
	if got := del(acct); got != http.StatusNoContent {
		t.Errorf("DELETE of the deleted account's id: %d, want 204", got)
	}
	if _, err := os.Stat(folder); !os.IsNotExist(err) {
		t.Errorf("the account's folder after its DELETE: %v, want it gone", err)
	}
}
