package oasync_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/directory/dirtest"
	"github.com/egretair/egret/oasync"
)

// refusal asserts that err is an *InvalidError with a problem about the
// element with this OA id and field whose message says says.
func refusal(t *testing.T, err error, id, field, says string) {
	t.Helper()
	var inv *oasync.InvalidError
	if !errors.As(err, &inv) {
		t.Fatalf("got %v, want the input refused", err)
	}
	for _, p := range inv.Problems {
		if p.ID == id && p.Field == field && strings.Contains(p.Message, says) {
			return
		}
	}
	t.Fatalf("no problem names %s, field %s, saying %q: %+v", id, field, says, inv.Problems)
}

func TestANewAccountNeverTakesAnotherAccountsAlias(t *testing.T) {
	for _, dialect := range dirtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := dirtest.Open(t, dialect)
			ctx := context.Background()
			mustImport(t, s, envelope(t, base()), false)

			// Wang's address changes by hand; the old one stays his
			// alias, so mail sent to it still reaches him.
			wang := personByOA(t, s, "u-wang")
			l := &directory.Lifecycle{Store: s, Domain: domain}
			if _, err := l.ChangeAddress(ctx, wang.ID, "wei.wang@"+domain); err != nil {
				t.Fatal(err)
			}

			// A new hire whose OA email, or login, is that old address.
			byEmail := personEl("u-new", "王伟", "d-ops", "wangwei2", "WangWei@"+domain, "")
			byEmail["alterTime"] = "2026-12-01 09:31:00.000"
			byLogin := personEl("u-new2", "王炜", "d-ops", "wangwei", nil, "")
			byLogin["alterTime"] = "2026-12-01 09:32:00.000"
			tests := []struct {
				name, id, field string
				el              obj
			}{
				{"by email", "u-new", "email", byEmail},
				{"by login", "u-new2", "email", byLogin},
			}
			for _, tc := range tests {
				before := fingerprint(t, s)
				_, err := importer(s).ImportChanges(ctx, bytes.NewReader(envelope(t, []obj{tc.el})), oasync.Options{})
				refusal(t, err, tc.id, tc.field, "wangwei@"+domain)
				if !strings.Contains(err.Error(), wang.Account.ID) {
					t.Errorf("%s: the refusal does not name the alias's account: %v", tc.name, err)
				}
				if after := fingerprint(t, s); after != before {
					t.Errorf("%s: a refused page wrote to the directory", tc.name)
				}
			}
			got, err := s.LookupAddress(ctx, "wangwei@"+domain)
			if err != nil || got.ID != wang.Account.ID {
				t.Errorf("mail to the alias reaches %+v (%v), want Wang's account %s", got, err, wang.Account.ID)
			}

			// A full snapshot is held to the same rule.
			els := append(base(), byEmail)
			_, err = importer(s).ImportSnapshot(ctx, bytes.NewReader(envelope(t, els)), oasync.Options{})
			refusal(t, err, "u-new", "email", "as an alias")
		})
	}
}

// TestAnAliasAddedDuringAnImportIsNotGivenAway holds an alias insert open
// while a page that makes an account at that address runs: the page
// loaded the directory before the alias existed, and must still not
// commit an account at an address that is now an alias.
func TestAnAliasAddedDuringAnImportIsNotGivenAway(t *testing.T) {
	s := dirtest.Open(t, "mysql")
	ctx := context.Background()
	mustImport(t, s, envelope(t, base()), false)
	zhao := personByOA(t, s, "u-zhao")

	db, err := s.SQL()
	if err != nil {
		t.Fatal(err)
	}
	other, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback()
	_, err = other.ExecContext(ctx, "INSERT INTO aliases (address, account_id, created_at) VALUES (?, ?, ?)",
		"xinren@"+domain, zhao.Account.ID, time.Now().UTC())
	if err != nil {
		t.Fatal(err)
	}

	hire := personEl("u-new", "新人", "d-ops", "xinren", nil, "")
	hire["alterTime"] = "2026-12-01 09:31:00.000"
	done := make(chan error, 1)
	go func() {
		_, err := importer(s).ImportChanges(ctx, bytes.NewReader(envelope(t, []obj{hire})), oasync.Options{})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("the page finished (%v) while an alias of its new address was being written", err)
	case <-time.After(500 * time.Millisecond):
	}
	if err := other.Commit(); err != nil {
		t.Fatal(err)
	}
	refusal(t, <-done, "u-new", "email", "xinren@"+domain)
	if n := count(t, s, &directory.Account{}, "address = ?", "xinren@"+domain); n != 0 {
		t.Errorf("an account was made at an alias's address")
	}
	got, err := s.LookupAddress(ctx, "xinren@"+domain)
	if err != nil || got.ID != zhao.Account.ID {
		t.Errorf("mail to the alias reaches %+v (%v), want Zhao's account", got, err)
	}
}

func TestFullWidthEmailsAndLoginsGiveTheFoldedAddress(t *testing.T) {
	for _, dialect := range dirtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := dirtest.Open(t, dialect)
			els := append(base(), personEl("u-fw", "赵敏", "d-ops", "ＺｈａｏＭｉｎ２", nil, ""))
			mustImport(t, s, envelope(t, els), false)
			if u := personByOA(t, s, "u-fw"); u.Account.Address != "zhaomin2@"+domain {
				t.Errorf("a full-width login gave the address %q", u.Account.Address)
			}

			// A full-width email that folds to Wang's address.
			twin := personEl("u-twin", "王伟", "d-ops", "wangwei3", "ｗａｎｇｗｅｉ＠"+domain, "")
			twin["alterTime"] = "2026-12-01 09:31:00.000"
			before := fingerprint(t, s)
			_, err := importer(s).ImportChanges(context.Background(),
				bytes.NewReader(envelope(t, []obj{twin})), oasync.Options{})
			refusal(t, err, "u-twin", "email", "wangwei@"+domain)
			if after := fingerprint(t, s); after != before {
				t.Errorf("a refused page wrote to the directory")
			}
		})
	}
}
