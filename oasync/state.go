package oasync

import (
	"fmt"

	"gorm.io/gorm"

	"github.com/egretair/egret/directory"
)

// dirState is the part of the directory an import compares against,
// loaded once at the start of the transaction, so that planning asks the
// database nothing per element.
type dirState struct {
	unitByID map[string]*directory.OrgUnit
	unitByOA map[string]*directory.OrgUnit
	// holding is the oldest holding unit, or nil.
	holding *directory.OrgUnit

	postByOA map[string]*directory.Post

	personByID    map[string]*directory.Person
	personByOA    map[string]*directory.Person
	personByLogin map[string]*directory.Person

	accountByPerson map[string]*directory.Account
	accountByAddr   map[string]*directory.Account
	// aliasOwner is the account each alias address delivers to. An
	// address is one account's or one alias, never both, so a new
	// account may not take an alias.
	aliasOwner map[string]string

	links []directory.PersonPost

	groupByOA map[string]*directory.Group
	members   map[string][]directory.GroupMember
}

// loadState reads the directory within tx.
func loadState(tx *gorm.DB) (*dirState, error) {
	var (
		units    []directory.OrgUnit
		posts    []directory.Post
		people   []directory.Person
		accounts []directory.Account
		groups   []directory.Group
		members  []directory.GroupMember
		aliases  []directory.Alias
	)
	st := &dirState{}
	loads := []struct {
		what string
		dest any
	}{
		{"org units", &units},
		{"posts", &posts},
		{"people", &people},
		{"accounts", &accounts},
		{"person posts", &st.links},
		{"groups", &groups},
		{"group members", &members},
		{"aliases", &aliases},
	}
	for _, l := range loads {
		if err := tx.Find(l.dest).Error; err != nil {
			return nil, fmt.Errorf("oasync: load %s: %w", l.what, err)
		}
	}

	st.unitByID = make(map[string]*directory.OrgUnit, len(units))
	st.unitByOA = make(map[string]*directory.OrgUnit, len(units))
	for i := range units {
		u := &units[i]
		st.unitByID[u.ID] = u
		if u.OAID != nil {
			st.unitByOA[*u.OAID] = u
		}
		// Ids are version 7 UUIDs, so the least is the oldest.
		if u.Kind == directory.UnitHolding && (st.holding == nil || u.ID < st.holding.ID) {
			st.holding = u
		}
	}

	st.postByOA = make(map[string]*directory.Post, len(posts))
	for i := range posts {
		if p := &posts[i]; p.OAID != nil {
			st.postByOA[*p.OAID] = p
		}
	}

	st.personByID = make(map[string]*directory.Person, len(people))
	st.personByOA = make(map[string]*directory.Person, len(people))
	st.personByLogin = make(map[string]*directory.Person, len(people))
	for i := range people {
		p := &people[i]
		st.personByID[p.ID] = p
		st.personByLogin[loginKey(p.Login)] = p
		if p.OAID != nil {
			st.personByOA[*p.OAID] = p
		}
	}

	st.accountByPerson = make(map[string]*directory.Account, len(accounts))
	st.accountByAddr = make(map[string]*directory.Account, len(accounts))
	for i := range accounts {
		a := &accounts[i]
		st.accountByAddr[a.Address] = a
		if a.PersonID != nil {
			st.accountByPerson[*a.PersonID] = a
		}
	}

	st.aliasOwner = make(map[string]string, len(aliases))
	for _, al := range aliases {
		st.aliasOwner[al.Address] = al.AccountID
	}

	st.groupByOA = make(map[string]*directory.Group, len(groups))
	for i := range groups {
		if g := &groups[i]; g.OAID != nil {
			st.groupByOA[*g.OAID] = g
		}
	}
	st.members = make(map[string][]directory.GroupMember, len(groups))
	for _, m := range members {
		st.members[m.GroupID] = append(st.members[m.GroupID], m)
	}
	return st, nil
}
