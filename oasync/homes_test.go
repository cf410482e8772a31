package oasync_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/directory/dirtest"
	"github.com/egretair/egret/oasync"
)

// TestImportedAccountsAreHomedEvenly imports the full OA export into a
// directory of a cluster with two backs, one of which already homes an
// account: every one of the 11,000 new accounts gets a home, and the
// two backs end up within one account of each other.
func TestImportedAccountsAreHomedEvenly(t *testing.T) {
	for _, dialect := range dirtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := dirtest.Open(t, dialect)
			s.SetHomeBacks([]string{"b1", "b2"})
			ctx := directory.WithActor(context.Background(), "cli:tester")
			l := &directory.Lifecycle{Store: s, Domain: domain}
			if _, err := l.CreateUser(ctx, directory.NewUser{Login: "sunli", DisplayName: "孙丽"}); err != nil {
				t.Fatal(err)
			}

			mustImport(t, s, fixture(t, "ekp-full.json.gz"), false)
			if n := count(t, s, &directory.Account{}, "home_node IS NULL"); n != 0 {
				t.Errorf("%d accounts have no home after the import", n)
			}
			b1 := count(t, s, &directory.Account{}, "home_node = ?", "b1")
			b2 := count(t, s, &directory.Account{}, "home_node = ?", "b2")
			if b1+b2 != 11001 || b1-b2 > 1 || b2-b1 > 1 {
				t.Errorf("homes: b1 %d, b2 %d; want 11001 split within one", b1, b2)
			}
		})
	}
}

// TestAChangePageHomesItsNewAccounts applies an OA change page that
// hires two people to a directory of a cluster whose first back is the
// fuller: both new accounts get a home, the first on the emptier back.
func TestAChangePageHomesItsNewAccounts(t *testing.T) {
	s := dirtest.Open(t, "sqlite")
	ctx := context.Background()
	mustImport(t, s, envelope(t, base()), false)
	s.SetHomeBacks([]string{"b1", "b2"})
	if err := s.DB().Table("accounts").Where("1 = 1").Update("home_node", "b1").Error; err != nil {
		t.Fatal(err)
	}
	hire1 := personEl("u-new1", "新人", "d-ops", "xinren", nil, "")
	hire2 := personEl("u-new2", "新同事", "d-ops", "xintongshi", nil, "")
	for _, h := range []obj{hire1, hire2} {
		h["alterTime"] = "2026-12-01 09:31:00.000"
	}
	rep, err := importer(s).ImportChanges(ctx, bytes.NewReader(envelope(t, []obj{hire1, hire2})), oasync.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Accounts.Created != 2 {
		t.Fatalf("the page opened %d accounts, want 2", rep.Accounts.Created)
	}
	first := personByOA(t, s, "u-new1")
	if got, err := s.HomeNode(ctx, first.Account.ID); err != nil || got != "b2" {
		t.Errorf("home of the first hire: %q, %v; want b2, the emptier back", got, err)
	}
	if n := count(t, s, &directory.Account{}, "home_node IS NULL"); n != 0 {
		t.Errorf("%d accounts have no home after the change page", n)
	}
}
