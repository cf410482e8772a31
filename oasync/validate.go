package oasync

import (
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/egretair/egret/directory"
)

// Column widths of the schema (migrations, MySQL form), in characters.
// A longer value is refused here rather than by the database halfway
// through the transaction.
const (
	maxOAID      = 64
	maxName      = 255
	maxLogin     = 128
	maxShort     = 64 // employee_no, mobile_raw, work_phone
	maxMobile    = 32
	maxSex       = 8
	maxAddress   = 320
	maxAlterTime = len(alterTimeLayout)
)

// index checks each element on its own and against the others, and gives
// every valid element its record id: the existing record's, found by OA
// id, or a new one.
func (pn *planner) index(els []*element) {
	for _, el := range els {
		if el.broken {
			continue
		}
		id := string(el.ID)
		if id == "" {
			pn.ps.add(el, "id", "the element has no id")
			continue
		}
		switch el.Type {
		case typeOrg, typeDept, typePost, typePerson, typeGroup:
		case "":
			pn.ps.add(el, "type", "the element has no type")
			continue
		default:
			pn.ps.add(el, "type", "unknown type %q (want org, dept, post, person or group)", el.Type)
			continue
		}
		if first, dup := pn.byOA[id]; dup {
			pn.ps.add(el, "id", "duplicate id: %s has it too", describe(first))
			continue
		}
		pn.byOA[id] = el
		pn.els = append(pn.els, el)
		pn.rec[id] = pn.existingID(el)
		pn.checkWidths(el)

		if _, ok := sortOrder(el); !ok {
			pn.pl.report.warn(el, "order %q is not a whole number; 0 is used", string(el.Order))
		}
		if t, ok := normAlterTime(el.AlterTime); !ok {
			pn.pl.report.warn(el, "alterTime %q is not a time; it is not kept", el.AlterTime)
		} else if aheadOfClock(t, pn.now) {
			pn.pl.report.warn(el, "alterTime %q is more than a day ahead of this server's clock; "+
				"it is not kept", el.AlterTime)
			el.AlterTime = ""
		}
		if el.Type == typePerson && el.LoginName == "" {
			pn.ps.add(el, "loginName", "a person must have a loginName")
		}
	}
}

// existingID answers the id of the record an element updates, or a new
// id for the record it creates.
func (pn *planner) existingID(el *element) string {
	id := string(el.ID)
	switch el.Type {
	case typeOrg, typeDept:
		if u := pn.st.unitByOA[id]; u != nil {
			return u.ID
		}
	case typePost:
		if p := pn.st.postByOA[id]; p != nil {
			return p.ID
		}
	case typePerson:
		if p := pn.st.personByOA[id]; p != nil {
			return p.ID
		}
	case typeGroup:
		if g := pn.st.groupByOA[id]; g != nil {
			return g.ID
		}
	}
	return directory.NewID()
}

func (pn *planner) checkWidths(el *element) {
	type width struct {
		field, value string
		max          int
	}
	ws := []width{{"id", string(el.ID), maxOAID}, {"name", el.Name, maxName}}
	if el.Type == typePerson {
		ws = append(ws,
			width{"loginName", string(el.LoginName), maxLogin},
			width{"no", string(el.No), maxShort},
			width{"nickName", el.NickName, maxName},
			width{"mobileNo", string(el.MobileNo), maxShort},
			width{"mobileNo", normMobile(string(el.MobileNo)), maxMobile},
			width{"workPhone", string(el.WorkPhone), maxShort},
			width{"sex", el.Sex, maxSex},
			width{"email", el.Email, maxAddress},
		)
	}
	for _, w := range ws {
		if n := utf8.RuneCountInString(w.value); n > w.max {
			pn.ps.add(el, w.field, "%d characters, more than the %d the directory keeps", n, w.max)
			return
		}
	}
}

// sortOrder reads an element's order; false when it is not a number that
// fits the column.
func sortOrder(el *element) (int, bool) {
	n, err := atoi(el.Order)
	if err != nil || n > math.MaxInt32 || n < math.MinInt32 {
		return 0, false
	}
	return n, true
}

// checkCycles refuses units whose parents lead back to themselves, in
// the tree the directory would hold after the import: the snapshot's
// units with their new parents, and the directory's other units as they
// are.
func (pn *planner) checkCycles() {
	parentOf := make(map[string]string, len(pn.st.unitByID))
	for id, u := range pn.st.unitByID {
		if u.ParentID != nil {
			parentOf[id] = *u.ParentID
		}
	}
	elByRec := make(map[string]*element)
	for _, el := range pn.els {
		if !el.isUnit() {
			continue
		}
		rid := pn.rec[string(el.ID)]
		elByRec[rid] = el
		delete(parentOf, rid)
		if p := pn.unitParent[rid]; p != nil {
			parentOf[rid] = *p
		}
	}
	if h := pn.holdingRec; h != nil && h.ParentID != nil {
		parentOf[h.ID] = *h.ParentID
	}

	const onPath, done = 1, 2
	mark := make(map[string]int, len(parentOf))
	for _, el := range pn.els {
		if !el.isUnit() {
			continue
		}
		var path []string
		for cur, ok := pn.rec[string(el.ID)], true; ok; cur, ok = parentOf[cur] {
			if mark[cur] == done {
				break
			}
			if mark[cur] == onPath {
				pn.cycle(path[indexOf(path, cur):], elByRec)
				break
			}
			mark[cur] = onPath
			path = append(path, cur)
		}
		for _, id := range path {
			mark[id] = done
		}
	}
}

// cycle reports one parent cycle, on its first element in the input.
func (pn *planner) cycle(ids []string, elByRec map[string]*element) {
	var first *element
	names := make([]string, 0, len(ids)+1)
	for _, id := range ids {
		if el := elByRec[id]; el != nil {
			names = append(names, describe(el))
			if first == nil || el.Index < first.Index {
				first = el
			}
		} else if u := pn.st.unitByID[id]; u != nil {
			names = append(names, fmt.Sprintf("directory unit %s (%q, not in this snapshot)", u.ID, u.Name))
		}
	}
	names = append(names, "back to "+names[0])
	pn.ps.add(first, "parent", "parent cycle: %s", strings.Join(names, " → "))
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return 0
}

// checkPeople refuses logins that collide without regard to case, and
// addresses two people would share, counting the directory's people and
// accounts that the snapshot does not name. It fixes each person's
// address and alternative address for planPeople.
func (pn *planner) checkPeople() {
	logins := make(map[string]string, len(pn.st.personByLogin)+len(pn.els))
	for lower, p := range pn.st.personByLogin {
		if !pn.inSnapshot(p) {
			logins[lower] = fmt.Sprintf("directory person %s (login %q, not in this snapshot)", p.ID, p.Login)
		}
	}
	addrs := make(map[string]string, len(pn.st.accountByAddr)+len(pn.els))
	for addr, a := range pn.st.accountByAddr {
		if a.PersonID == nil || !pn.inSnapshot(pn.st.personByID[*a.PersonID]) {
			addrs[addr] = fmt.Sprintf("directory account %s (not in this snapshot)", a.ID)
		}
	}
	// Aliases are addresses as much as an account's own: mail to one is
	// delivered to its account, so a new account may not take it.
	for addr, acct := range pn.st.aliasOwner {
		addrs[addr] = fmt.Sprintf("directory account %s (as an alias)", acct)
	}

	var people []*element
	for _, el := range pn.els {
		if el.Type != typePerson || el.LoginName == "" {
			continue
		}
		people = append(people, el)
		lower := loginKey(string(el.LoginName))
		if other, taken := logins[lower]; taken {
			pn.ps.add(el, "loginName",
				"login %q collides with %s (logins are compared without regard to case or width)",
				string(el.LoginName), other)
			continue
		}
		logins[lower] = describe(el)
	}

	// People who hold an account already keep its address, so they claim
	// it before anyone who is to get a new one.
	claim := func(el *element, addr string) {
		if other, taken := addrs[addr]; taken {
			pn.ps.add(el, "email", "would receive the mail address %s, which %s has", addr, other)
			return
		}
		addrs[addr] = describe(el)
	}
	for _, el := range people {
		rule, alt := mailRule(el.Email, loginKey(string(el.LoginName)), pn.domain)
		pn.alt[string(el.ID)] = alt
		if a := pn.st.accountByPerson[pn.rec[string(el.ID)]]; a != nil {
			pn.addr[string(el.ID)] = a.Address
			claim(el, a.Address)
			if rule != a.Address {
				pn.pl.report.warn(el, "the OA's data now gives the address %s; "+
					"the account keeps %s until it is changed by hand", rule, a.Address)
			}
		}
	}
	for _, el := range people {
		if _, kept := pn.addr[string(el.ID)]; kept {
			continue
		}
		rule, _ := mailRule(el.Email, loginKey(string(el.LoginName)), pn.domain)
		local, _, _ := strings.Cut(rule, "@")
		if !validLocalPart(local) || len(rule) > maxAddress {
			field := "loginName"
			if directory.NormAddress(el.Email) == rule {
				field = "email"
			}
			pn.ps.add(el, field, "gives %q, which is not a mail address", rule)
			continue
		}
		pn.addr[string(el.ID)] = rule
		claim(el, rule)
	}
}

// inSnapshot reports whether a directory person is named by a person
// element of the snapshot.
func (pn *planner) inSnapshot(p *directory.Person) bool {
	if p == nil || p.OAID == nil {
		return false
	}
	el := pn.byOA[*p.OAID]
	return el != nil && el.Type == typePerson
}
