package directory_test

import (
	"context"
	"errors"
	"testing"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/directory/dirtest"
)

func TestMailToAnAliasLandsInItsAccount(t *testing.T) {
	for _, dialect := range dirtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := dirtest.Open(t, dialect)
			ctx := directory.WithActor(context.Background(), "cli:tester")
			l := &directory.Lifecycle{Store: s, Domain: "egretair.example"}
			u, err := l.CreateUser(ctx, directory.NewUser{Login: "chenjing", DisplayName: "陈静"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := l.AddAlias(ctx, u.ID, "Jing.Chen@egretair.example"); err != nil {
				t.Fatal(err)
			}
			got, err := s.LookupAddress(ctx, "jing.chen@egretair.example")
			if err != nil || got.ID != u.Account.ID || got.Address != "chenjing@egretair.example" || got.Login != "chenjing" {
				t.Fatalf("mail to the alias: %+v, %v; want account %s", got, err, u.Account.ID)
			}
			if _, err := s.LookupAddress(ctx, "nobody@egretair.example"); !errors.Is(err, directory.ErrNotFound) {
				t.Fatalf("an unknown address resolved: %v", err)
			}
			if _, err := l.SetEnabled(ctx, u.ID, false); err != nil {
				t.Fatal(err)
			}
			if _, err := s.LookupAddress(ctx, "jing.chen@egretair.example"); !errors.Is(err, directory.ErrNotFound) {
				t.Fatalf("the alias of a disabled account receives mail: %v", err)
			}
			_, err = l.CreateUser(ctx, directory.NewUser{Login: "jing.chen", DisplayName: "x"})
			if !directory.IsConflict(err) {
				t.Fatalf("a login whose address is an alias: %v; want a conflict", err)
			}
		})
	}
}
