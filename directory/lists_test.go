package directory_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/directory/dirtest"
)

// addresses answers the addresses a list reaches now.
func addresses(t *testing.T, s *directory.Store, list, sender string) ([]string, bool) {
	t.Helper()
	exp, err := s.ExpandList(context.Background(), list, sender)
	if err != nil {
		t.Fatalf("expand %s: %v", list, err)
	}
	var l []string
	for _, m := range exp.Members {
		l = append(l, m.Address)
	}
	return l, exp.MayPost
}

func TestAUnitsListFollowsTheOrgChart(t *testing.T) {
	for _, dialect := range dirtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := dirtest.Open(t, dialect)
			ctx := directory.WithActor(context.Background(), "cli:tester")
			l := &directory.Lifecycle{Store: s, Domain: "egretair.example"}
			unit := func(name, parent string) string {
				u, err := l.CreateUnit(ctx, directory.NewUnit{Name: name, Kind: "dept", ParentID: parent})
				if err != nil {
					t.Fatal(err)
				}
				return u.ID
			}
			org, err := l.CreateUnit(ctx, directory.NewUnit{Name: "鹭航航空", Kind: "org"})
			if err != nil {
				t.Fatal(err)
			}
			ops := unit("运行控制部", org.ID)
			dispatch := unit("签派室", ops)
			cabin := unit("客舱部", org.ID)
			user := func(login, unit string) *directory.User {
				u, err := l.CreateUser(ctx, directory.NewUser{Login: login, DisplayName: login, UnitID: unit})
				if err != nil {
					t.Fatal(err)
				}
				return u
			}
			user("zhanglei", ops)
			liu := user("liuyang", dispatch)
			user("chenjing", cabin)
			off := user("sunli", ops)
			if _, err := l.SetEnabled(ctx, off.ID, false); err != nil {
				t.Fatal(err)
			}
			if _, err := l.AddAlias(ctx, liu.ID, "yang.liu@egretair.example"); err != nil {
				t.Fatal(err)
			}

			const list = "ops@egretair.example"
			if _, err := l.SetList(ctx, directory.ListOfUnit, ops, directory.ListInput{
				Address: "OPS@egretair.example", IncludeSubunits: true}); err != nil {
				t.Fatal(err)
			}
			got, _ := addresses(t, s, list, "")
			want := []string{"liuyang@egretair.example", "zhanglei@egretair.example"}
			if !slices.Equal(got, want) {
				t.Fatalf("ops with sub-units reaches %q, want %q (a disabled account is left out)", got, want)
			}

			// A move takes effect at the next message.
			if _, err := l.MoveUser(ctx, liu.ID, cabin); err != nil {
				t.Fatal(err)
			}
			got, _ = addresses(t, s, list, "")
			if !slices.Equal(got, []string{"zhanglei@egretair.example"}) {
				t.Errorf("after liuyang moved to cabin, ops reaches %q", got)
			}
			if _, err := l.SetList(ctx, directory.ListOfUnit, cabin, directory.ListInput{
				Address: "cabin@egretair.example"}); err != nil {
				t.Fatal(err)
			}
			got, _ = addresses(t, s, "cabin@egretair.example", "")
			if !slices.Equal(got, []string{"chenjing@egretair.example", "liuyang@egretair.example"}) {
				t.Errorf("after the move, cabin reaches %q", got)
			}

			tests := []struct {
				name    string
				posting string
				sender  string
				may     bool
			}{
				{"a member may post to a members list", "members", "zhanglei@egretair.example", true},
				{"the alias of someone who moved out may not post", "members", "Yang.Liu@egretair.example", false},
				{"someone else on the domain may not post to a members list", "members", "chenjing@egretair.example", false},
				{"the null sender may not post to a members list", "members", "", false},
				{"the domain may post to a domain list", "domain", "chenjing@egretair.example", true},
				{"an outsider may not post to a domain list", "domain", "x@remote.example", false},
				{"an outsider may post to an open list", "anyone", "x@remote.example", true},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					if _, err := l.SetList(ctx, directory.ListOfUnit, ops, directory.ListInput{
						Address: list, IncludeSubunits: true, Posting: tt.posting}); err != nil {
						t.Fatal(err)
					}
					if _, may := addresses(t, s, list, tt.sender); may != tt.may {
						t.Errorf("%q may post: %v, want %v", tt.sender, may, tt.may)
					}
				})
			}

			// liuyang is back in dispatch: now the alias is a member's.
			if _, err := l.MoveUser(ctx, liu.ID, dispatch); err != nil {
				t.Fatal(err)
			}
			if _, err := l.SetList(ctx, directory.ListOfUnit, ops, directory.ListInput{
				Address: list, IncludeSubunits: true}); err != nil {
				t.Fatal(err)
			}
			if _, may := addresses(t, s, list, "yang.liu@egretair.example"); !may {
				t.Errorf("a member's alias may not post to a members list")
			}
		})
	}
}

func TestAListAddressIsUniqueAcrossAccountsAliasesAndLists(t *testing.T) {
	for _, dialect := range dirtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := dirtest.Open(t, dialect)
			ctx := directory.WithActor(context.Background(), "cli:tester")
			l := &directory.Lifecycle{Store: s, Domain: "egretair.example"}
			org, err := l.CreateUnit(ctx, directory.NewUnit{Name: "鹭航航空", Kind: "org"})
			if err != nil {
				t.Fatal(err)
			}
			ops, err := l.CreateUnit(ctx, directory.NewUnit{Name: "运行控制部", ParentID: org.ID})
			if err != nil {
				t.Fatal(err)
			}
			u, err := l.CreateUser(ctx, directory.NewUser{Login: "zhanglei", DisplayName: "张磊", UnitID: ops.ID})
			if err != nil {
				t.Fatal(err)
			}
			l.AddAlias(ctx, u.ID, "lei@egretair.example")
			g := directory.Group{ID: directory.NewID(), Name: "值班经理", Available: true}
			if err := s.DB().Create(&g).Error; err != nil {
				t.Fatal(err)
			}
			s.DB().Create(&directory.GroupMember{GroupID: g.ID, MemberKind: directory.MemberUnit, MemberID: ops.ID})

			for _, taken := range []string{"zhanglei@egretair.example", "lei@egretair.example"} {
				_, err := l.SetList(ctx, directory.ListOfUnit, org.ID, directory.ListInput{Address: taken})
				if !directory.IsConflict(err) {
					t.Errorf("a list at %s, which an account holds: %v; want a conflict", taken, err)
				}
			}
			if _, err := l.SetList(ctx, directory.ListOfUnit, org.ID, directory.ListInput{Address: "all@remote.example"}); err == nil {
				t.Errorf("a list off the mail domain was accepted")
			}
			if _, err := l.SetList(ctx, directory.ListOfUnit, org.ID, directory.ListInput{Address: "all@egretair.example", Posting: "friends"}); err == nil {
				t.Errorf("an unknown posting policy was accepted")
			}
			if _, err := l.SetList(ctx, directory.ListOfUnit, org.ID, directory.ListInput{Address: "all@egretair.example"}); err != nil {
				t.Fatal(err)
			}
			if _, err := l.SetList(ctx, directory.ListOfGroup, g.ID, directory.ListInput{Address: "all@egretair.example"}); !directory.IsConflict(err) {
				t.Errorf("a second list at a list's address: %v; want a conflict", err)
			}
			if _, err := l.AddAlias(ctx, u.ID, "all@egretair.example"); !directory.IsConflict(err) {
				t.Errorf("an alias at a list's address: %v; want a conflict", err)
			}
			if _, err := l.SetList(ctx, directory.ListOfGroup, g.ID, directory.ListInput{Address: "duty@egretair.example"}); err != nil {
				t.Fatal(err)
			}
			got, _ := addresses(t, s, "duty@egretair.example", "")
			if !slices.Equal(got, []string{"zhanglei@egretair.example"}) {
				t.Errorf("the group with ops as a member reaches %q", got)
			}

			// Removed, the address is free for an alias.
			if err := l.RemoveList(ctx, directory.ListOfUnit, org.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := s.ExpandList(ctx, "all@egretair.example", ""); !errors.Is(err, directory.ErrNotFound) {
				t.Errorf("a removed list still expands: %v", err)
			}
			if _, err := l.AddAlias(ctx, u.ID, "all@egretair.example"); err != nil {
				t.Errorf("the address of a removed list: %v", err)
			}
		})
	}
}
