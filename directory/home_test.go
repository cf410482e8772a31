package directory_test

import (
	"context"
	"errors"
	"testing"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/directory/dirtest"
)

func TestTheFirstClaimedHomeStays(t *testing.T) {
	for _, dialect := range dirtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := dirtest.Open(t, dialect)
			ctx := directory.WithActor(context.Background(), "cli:tester")
			l := &directory.Lifecycle{Store: s, Domain: "egretair.example"}
			u, err := l.CreateUser(ctx, directory.NewUser{Login: "sunli", DisplayName: "孙丽"})
			if err != nil {
				t.Fatal(err)
			}
			id := u.Account.ID
			if got, err := s.HomeNode(ctx, id); err != nil || got != "" {
				t.Fatalf("a new account's home: %q, %v; want none", got, err)
			}
			if got, err := s.ClaimHomeNode(ctx, id, "b2"); err != nil || got != "b2" {
				t.Fatalf("first claim: %q, %v; want b2", got, err)
			}
			if got, err := s.ClaimHomeNode(ctx, id, "b1"); err != nil || got != "b2" {
				t.Fatalf("second claim: %q, %v; want the first, b2", got, err)
			}
			if got, _ := s.HomeNode(ctx, id); got != "b2" {
				t.Fatalf("home after two claims: %q, want b2", got)
			}

			// A home set on purpose is not a claim's to change.
			if err := s.SetHomeNode(ctx, id, "b3"); err != nil {
				t.Fatal(err)
			}
			if got, err := s.ClaimHomeNode(ctx, id, "b1"); err != nil || got != "b3" {
				t.Fatalf("claim over a set home: %q, %v; want b3", got, err)
			}
			if _, err := s.ClaimHomeNode(ctx, "no-such-account", "b1"); !errors.Is(err, directory.ErrNotFound) {
				t.Fatalf("claim for no account: %v; want not found", err)
			}
		})
	}
}

func TestTheLeastHomedNodeIsPicked(t *testing.T) {
	for _, dialect := range dirtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := dirtest.Open(t, dialect)
			ctx := directory.WithActor(context.Background(), "cli:tester")
			l := &directory.Lifecycle{Store: s, Domain: "egretair.example"}
			var ids []string
			for _, login := range []string{"wangfang", "lina", "zhangwei", "liuyang"} {
				u, err := l.CreateUser(ctx, directory.NewUser{Login: login, DisplayName: login})
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, u.Account.ID)
			}
			backs := []string{"b1", "b2", "b3"}
			pick := func(want string) {
				t.Helper()
				got, err := s.LeastHomed(ctx, backs)
				if err != nil || got != want {
					t.Fatalf("least homed: %q, %v; want %s", got, err, want)
				}
			}

			home := func(i int, node string) {
				t.Helper()
				if err := s.SetHomeNode(ctx, ids[i], node); err != nil {
					t.Fatal(err)
				}
			}

			// No homes yet: a tie, which the first back wins.
			pick("b1")
			home(0, "b1")
			pick("b2")
			home(1, "b2")
			home(2, "b1")
			pick("b3")

			// A home on a node no longer listed counts for nobody.
			home(3, "gone")
			home(2, "b3")
			pick("b1")
			if _, err := s.LeastHomed(ctx, nil); err == nil {
				t.Fatal("least homed of no nodes: no error")
			}
		})
	}
}

// TestANewAccountIsHomedOnTheLeastLoadedBack opens accounts on a
// directory of a cluster with two backs: each lands on the back with
// fewer accounts, the earlier listed on a tie, and a directory with no
// backs named, as on a node of role all, leaves the home unset.
func TestANewAccountIsHomedOnTheLeastLoadedBack(t *testing.T) {
	for _, dialect := range dirtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := dirtest.Open(t, dialect)
			ctx := directory.WithActor(context.Background(), "cli:tester")
			l := &directory.Lifecycle{Store: s, Domain: "egretair.example"}
			create := func(login string) string {
				t.Helper()
				u, err := l.CreateUser(ctx, directory.NewUser{Login: login, DisplayName: login})
				if err != nil {
					t.Fatal(err)
				}
				h, err := s.HomeNode(ctx, u.Account.ID)
				if err != nil {
					t.Fatal(err)
				}
				return h
			}
			if h := create("sunli"); h != "" {
				t.Fatalf("home with no backs named: %q, want none", h)
			}

			s.SetHomeBacks([]string{"b1", "b2"})
			if h := create("zhoujie"); h != "b1" {
				t.Fatalf("home on a tie: %q, want b1, the earlier listed", h)
			}
			if h := create("huangmin"); h != "b2" {
				t.Fatalf("home with b1 holding one: %q, want b2", h)
			}
			// Postmaster mailboxes are accounts too.
			pm, err := l.EnsurePostmaster(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if h, _ := s.HomeNode(ctx, pm.ID); h != "b1" {
				t.Fatalf("postmaster's home: %q, want b1", h)
			}
		})
	}
}
