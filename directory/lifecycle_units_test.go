package directory_test

import (
	"context"
	"testing"
	"time"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/directory/dirtest"
)

func TestAUnitAGroupListsIsNotDeleted(t *testing.T) {
	for _, dialect := range dirtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := dirtest.Open(t, dialect)
			ctx := directory.WithActor(context.Background(), "cli:tester")
			l := &directory.Lifecycle{Store: s, Domain: "egretair.example"}
			org, err := l.CreateUnit(ctx, directory.NewUnit{Name: "鹭航航空", Kind: directory.UnitOrg})
			if err != nil {
				t.Fatal(err)
			}
			empty, err := l.CreateUnit(ctx, directory.NewUnit{Name: "安全办", ParentID: org.ID})
			if err != nil {
				t.Fatal(err)
			}
			// The OA's safety committee lists the department.
			now := time.Now().UTC()
			g := directory.Group{ID: directory.NewID(), Name: "安全委员会", Available: true, CreatedAt: now, UpdatedAt: now}
			if err := s.DB().Create(&g).Error; err != nil {
				t.Fatal(err)
			}
			m := directory.GroupMember{GroupID: g.ID, MemberKind: directory.MemberUnit, MemberID: empty.ID}
			if err := s.DB().Create(&m).Error; err != nil {
				t.Fatal(err)
			}

			err = l.DeleteUnit(ctx, empty.ID)
			ce, ok := err.(*directory.ConflictError)
			if !ok || len(ce.Holders) != 1 || ce.Holders[0].Kind != directory.EntityGroup || ce.Holders[0].ID != g.ID {
				t.Fatalf("got %v, want a conflict naming group %s", err, g.ID)
			}
			if _, err := s.GetOrgUnit(ctx, empty.ID); err != nil {
				t.Errorf("the unit is gone: %v", err)
			}

			// Once the group no longer lists it, it goes.
			if err := s.DB().Where("group_id = ?", g.ID).Delete(&directory.GroupMember{}).Error; err != nil {
				t.Fatal(err)
			}
			if err := l.DeleteUnit(ctx, empty.ID); err != nil {
				t.Fatalf("an empty unit no group lists: %v", err)
			}
		})
	}
}

func TestAnOAIDWithSpacesAtItsEndsIsRefusedOnEveryDatabase(t *testing.T) {
	for _, dialect := range dirtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := dirtest.Open(t, dialect)
			ctx := context.Background()
			l := &directory.Lifecycle{Store: s, Domain: "egretair.example"}
			if _, err := l.CreateUnit(ctx, directory.NewUnit{Name: "鹭航航空", Kind: directory.UnitOrg, OAID: "d1"}); err != nil {
				t.Fatal(err)
			}
			_, err := l.CreateUnit(ctx, directory.NewUnit{Name: "鹭航航空二", Kind: directory.UnitOrg, OAID: "d1 "})
			fe, ok := err.(*directory.FieldError)
			if !ok || fe.Field != "oa_id" {
				t.Errorf("unit: got %v, want oa_id refused", err)
			}
			_, err = l.CreateUser(ctx, directory.NewUser{Login: "wangwei", DisplayName: "王伟", OAID: " p1"})
			fe, ok = err.(*directory.FieldError)
			if !ok || fe.Field != "oa_id" {
				t.Errorf("user: got %v, want oa_id refused", err)
			}
			var n int64
			s.DB().Model(&directory.OrgUnit{}).Count(&n)
			if n != 1 {
				t.Errorf("%d units, want 1", n)
			}
		})
	}
}
