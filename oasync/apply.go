package oasync

import (
	"errors"
	"fmt"
	"reflect"
	"slices"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

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
		{"check new addresses against aliases", func() error { return pl.checkAliases(tx) }},
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
		err := s.run()
		var invalid *InvalidError
		if errors.As(err, &invalid) {
			return err
		}
		if err != nil {
			return fmt.Errorf("oasync: %s: %w", s.what, err)
		}
	}
	return nil
}

// createdAccounts answers the ids of the accounts the plan opens, in
// the order it opens them, for their homes.
func (pl *plan) createdAccounts() []string {
	ids := make([]string, len(pl.accountCreates))
	for i, a := range pl.accountCreates {
		ids[i] = a.ID
	}
	return ids
}

// aliasBatch bounds the addresses one look-up of aliases names.
const aliasBatch = 500

// checkAliases refuses the import when a new account's address has
// become an alias since the directory was loaded: a lifecycle call that
// added the alias meanwhile. No unique key spans accounts and aliases,
// so the look-up is what keeps one address from reaching two accounts.
// On MySQL it reads under lock, after the accounts were inserted: a
// lifecycle call that checks the address under lock then sees the new
// account, and one that got there first is waited for and seen here.
// SQLite has one writer at a time, and a transaction that read before
// another wrote cannot commit.
func (pl *plan) checkAliases(tx *gorm.DB) error {
	if len(pl.newAddr) == 0 {
		return nil
	}
	addrs := make([]string, 0, len(pl.newAddr))
	for a := range pl.newAddr {
		addrs = append(addrs, a)
	}
	slices.Sort(addrs)
	q := tx
	if tx.Dialector.Name() == "mysql" {
		q = tx.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	var ps problems
	for chunk := range slices.Chunk(addrs, aliasBatch) {
		var found []directory.Alias
		if err := q.Where("address IN ?", chunk).Order("address").Find(&found).Error; err != nil {
			return err
		}
		for _, al := range found {
			ps.add(pl.newAddr[al.Address], "email",
				"would receive the mail address %s, which directory account %s (as an alias) has",
				al.Address, al.AccountID)
		}
	}
	return ps.err()
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
