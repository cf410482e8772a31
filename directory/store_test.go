package directory_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/directory/dirtest"
)

func TestAccountsOnEachDatabase(t *testing.T) {
	for _, dialect := range dirtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := dirtest.Open(t, dialect)
			ctx := context.Background()

			unit := directory.OrgUnit{ID: directory.NewID(), Kind: directory.UnitOrg, Name: "鹭航航空", Available: true}
			person := directory.Person{
				ID: directory.NewID(), Kind: directory.PersonStaff,
				Login: "WangWei", LoginLower: "wangwei", DisplayName: "王伟",
				UnitID: &unit.ID, Status: directory.PersonActive,
			}
			acct := directory.Account{
				ID: directory.NewID(), PersonID: &person.ID,
				Address: "wangwei@egretair.example", Status: directory.AccountEnabled,
			}
			for _, rec := range []any{&unit, &person, &acct} {
				if err := s.DB().Create(rec).Error; err != nil {
					t.Fatal(err)
				}
			}

			if _, err := s.Authenticate(ctx, "wangwei", "anything"); !errors.Is(err, directory.ErrBadCredentials) {
				t.Fatalf("login before any password was set: got %v, want ErrBadCredentials", err)
			}
			if _, err := s.SetPassword(ctx, "WANGWEI", "short"); !errors.Is(err, directory.ErrWeakPassword) {
				t.Fatalf("short password: got %v, want ErrWeakPassword", err)
			}
			if _, err := s.SetPassword(directory.WithActor(ctx, "cli:tester"), "WANGWEI", "飞行安全第一 2026"); err != nil {
				t.Fatal(err)
			}

			for _, name := range []string{"wangwei", "WangWei", "WANGWEI@egretair.example", acct.ID} {
				got, err := s.Authenticate(ctx, name, "飞行安全第一 2026")
				if err != nil || got.ID != acct.ID {
					t.Errorf("login as %q: got %+v, %v; want account %s", name, got, err, acct.ID)
				}
			}
			if _, err := s.Authenticate(ctx, "wangwei", "wrong password"); !errors.Is(err, directory.ErrBadCredentials) {
				t.Errorf("wrong password: got %v", err)
			}
			if _, err := s.Authenticate(ctx, "nobody", "飞行安全第一 2026"); !errors.Is(err, directory.ErrBadCredentials) {
				t.Errorf("unknown user: got %v", err)
			}

			if got, err := s.LookupAddress(ctx, "WangWei@EgretAir.Example"); err != nil || got.ID != acct.ID {
				t.Errorf("address lookup ignores case: got %+v, %v", got, err)
			}
			s.DB().Model(&directory.Account{}).Where("id = ?", acct.ID).Update("status", directory.AccountDisabled)
			if _, err := s.LookupAddress(ctx, "wangwei@egretair.example"); !errors.Is(err, directory.ErrNotFound) {
				t.Errorf("disabled account still receives mail: %v", err)
			}
			if _, err := s.Authenticate(ctx, "wangwei", "飞行安全第一 2026"); !errors.Is(err, directory.ErrBadCredentials) {
				t.Errorf("disabled account can still log in: %v", err)
			}

			var changes []directory.Change
			s.DB().Where("entity_id = ?", acct.ID).Find(&changes)
			if len(changes) != 1 || changes[0].Actor != "cli:tester" || strings.Contains(changes[0].Data, "argon2") {
				t.Errorf("password change logged %+v; want one row by cli:tester without the hash", changes)
			}
		})
	}
}

func TestAPIKeysAreKeptHashed(t *testing.T) {
	s := dirtest.Open(t, "sqlite")
	ctx := context.Background()
	k, secret, err := s.CreateAPIKey(ctx, "oa", []string{"oa:sync"})
	if err != nil {
		t.Fatal(err)
	}
	var stored directory.APIKey
	s.DB().Where("id = ?", k.ID).Take(&stored)
	if stored.SecretHash == secret || stored.SecretHash != directory.HashKey(secret) {
		t.Fatalf("stored %q for secret %q: want its SHA-256 only", stored.SecretHash, secret)
	}
	got, err := s.VerifyAPIKey(ctx, secret)
	if err != nil || !got.HasScope("oa:sync") || got.HasScope("sso:issue") {
		t.Fatalf("verify: %+v, %v", got, err)
	}
	if _, err := s.VerifyAPIKey(ctx, secret+"x"); !errors.Is(err, directory.ErrBadKey) {
		t.Fatalf("a wrong key was accepted: %v", err)
	}
}

func TestParseURLRefusesUnknownSchemes(t *testing.T) {
	for _, u := range []string{"", "postgres://x", "sqlite:", "mysql://root:secret@tcp(h:1)"} {
		if _, _, err := directory.ParseURL(u); err == nil {
			t.Errorf("ParseURL(%q) accepted", u)
		} else if u != "" && strings.Contains(err.Error(), "secret") {
			t.Errorf("ParseURL(%q) error shows the password: %v", u, err)
		}
	}
}

func TestGetUserByIDOAIDOrLogin(t *testing.T) {
	for _, dialect := range dirtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := dirtest.Open(t, dialect)
			ctx := context.Background()
			oaID := "6513270e269e0d37f2a74de452e6b438"
			p := directory.Person{
				ID: directory.NewID(), OAID: &oaID, Kind: directory.PersonStaff,
				Login: "LiNa", LoginLower: "lina", DisplayName: "李娜", Status: directory.PersonActive,
			}
			// A second person whose login is the first one's egret id
			// must not shadow the first when looked up by that id.
			q := directory.Person{
				ID: directory.NewID(), Kind: directory.PersonStaff,
				Login: p.ID, LoginLower: p.ID, DisplayName: "影子", Status: directory.PersonActive,
			}
			for _, rec := range []any{&p, &q} {
				if err := s.DB().Create(rec).Error; err != nil {
					t.Fatal(err)
				}
			}
			for _, key := range []string{p.ID, oaID, "lina", "LINA"} {
				u, err := s.GetUser(ctx, key)
				if err != nil || u.ID != p.ID {
					t.Errorf("GetUser(%q) = %v, %v; want %s", key, u, err, p.ID)
				}
			}
			if _, err := s.GetUser(ctx, "nobody"); !errors.Is(err, directory.ErrNotFound) {
				t.Errorf("unknown user: %v", err)
			}
		})
	}
}
