package oasync

import (
	"fmt"
	"reflect"

	"gorm.io/gorm"

	"github.com/egretair/egret/directory"
)

// Placeholders per INSERT. MySQL allows 65,535 and gains from large
// batches. SQLite allows 32,766, but the pure-Go driver matches each
// placeholder against every argument, so a statement costs the square of
// its placeholders and small batches are the fastest.
const (
	mysqlParams  = 30000
	sqliteParams = 1000
)

// apply writes a plan within tx: creates before updates, units before
// what they hold, the change log last. The caller commits or rolls back.
func (pl *plan) apply(tx *gorm.DB, maxParams int) error {
	steps := []struct {
		what string
		run  func() error
	}{
		{"create org units", func() error { return insert(tx, pl.unitCreates, maxParams) }},
		{"update org units", func() error { return update(tx, &directory.OrgUnit{}, pl.unitUpdates) }},
		{"create posts", func() error { return insert(tx, pl.postCreates, maxParams) }},
		{"update posts", func() error { return update(tx, &directory.Post{}, pl.postUpdates) }},
		{"free changed logins", pl.freeLogins(tx)},
		{"create people", func() error { return insert(tx, pl.personCreates, maxParams) }},
		{"update people", func() error { return update(tx, &directory.Person{}, pl.personUpdates) }},
		{"create accounts", func() error { return insert(tx, pl.accountCreates, maxParams) }},
		{"update accounts", func() error { return update(tx, &directory.Account{}, pl.accountUpdates) }},
		{"remove person posts", func() error { return removeLinks(tx, pl.linkRemoves) }},
		{"add person posts", func() error { return insert(tx, pl.linkAdds, maxParams) }},
		{"create groups", func() error { return insert(tx, pl.groupCreates, maxParams) }},
		{"update groups", func() error { return update(tx, &directory.Group{}, pl.groupUpdates) }},
		{"remove group members", func() error { return removeMembers(tx, pl.memberRemoves) }},
		{"add group members", func() error { return insert(tx, pl.memberAdds, maxParams) }},
		{"append change log", func() error { return directory.LogChanges(tx, pl.changes) }},
	}
	for _, s := range steps {
		if err := s.run(); err != nil {
			return fmt.Errorf("oasync: %s: %w", s.what, err)
		}
	}
	return nil
}

// freeLogins moves the logins that change out of the way first, so that
// two people who swap logins do not meet the unique index halfway.
func (pl *plan) freeLogins(tx *gorm.DB) func() error {
	return func() error {
		for _, id := range pl.loginMoves {
			err := tx.Model(&directory.Person{}).Where("id = ?", id).
				UpdateColumn("login_lower", "#"+id).Error
			if err != nil {
				return fmt.Errorf("person %s: %w", id, err)
			}
		}
		return nil
	}
}

// insert creates rows in batches as large as the placeholder limit
// allows. Every field of the directory's models is a column.
func insert[T any](tx *gorm.DB, rows []T, maxParams int) error {
	if len(rows) == 0 {
		return nil
	}
	cols := reflect.TypeFor[T]().NumField()
	return tx.CreateInBatches(rows, max(1, maxParams/cols)).Error
}

// update writes each row's changed columns. Updates are few after the
// first import, so one statement a row costs little.
func update(tx *gorm.DB, model any, rows []rowUpdate) error {
	for _, r := range rows {
		err := tx.Model(model).Where("id = ?", r.id).
			UpdateColumns(map[string]any(r.set)).Error
		if err != nil {
			return fmt.Errorf("row %s: %w", r.id, err)
		}
	}
	return nil
}

func removeLinks(tx *gorm.DB, links []directory.PersonPost) error {
	for _, l := range links {
		err := tx.Where("person_id = ? AND post_id = ?", l.PersonID, l.PostID).
			Delete(&directory.PersonPost{}).Error
		if err != nil {
			return fmt.Errorf("person %s, post %s: %w", l.PersonID, l.PostID, err)
		}
	}
	return nil
}

func removeMembers(tx *gorm.DB, members []directory.GroupMember) error {
	for _, m := range members {
		err := tx.Where("group_id = ? AND member_kind = ? AND member_id = ?",
			m.GroupID, m.MemberKind, m.MemberID).
			Delete(&directory.GroupMember{}).Error
		if err != nil {
			return fmt.Errorf("group %s, %s %s: %w", m.GroupID, m.MemberKind, m.MemberID, err)
		}
	}
	return nil
}
