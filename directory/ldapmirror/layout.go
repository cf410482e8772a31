package ldapmirror

import (
	"fmt"
	"sort"
	"strings"

	"github.com/egretair/egret/directory"
)

// Kinds of entry.
const (
	kindBase      = "base"
	kindContainer = "container"
	kindUnit      = "unit"
	kindPerson    = "person"
	kindGroup     = "group"
)

// The containers egret keeps beside the org tree, directly under the
// base, and the uniqueIdentifier each carries.
const (
	FormerStaffOU = "former-staff"
	GroupsOU      = "groups"
	formerStaffID = "egret:former-staff"
	groupsID      = "egret:groups"
)

// Entry is an entry as egret would have it in LDAP.
type Entry struct {
	DN string
	// ID is egret's id of the record, kept in uniqueIdentifier.
	ID    string
	Kind  string
	Depth int
	// Attrs maps attribute names, spelt as the schema does, to values.
	Attrs map[string][]string
}

// personRow is a person with the parts of their account the mirror
// needs.
type personRow struct {
	directory.Person
	AccountStatus string
	Address       string
	PasswordHash  string
}

// enabled reports whether the person belongs in the org tree: active in
// the OA with an enabled mail account.
func (p *personRow) enabled() bool {
	return p.Status == directory.PersonActive &&
		p.AccountStatus == directory.AccountEnabled
}

// layout places records in the tree: it knows every unit's RDN and DN
// and every group's RDN.
type layout struct {
	base     string
	units    map[string]*directory.OrgUnit
	unitRDN  map[string]string
	unitDN   map[string]string
	depth    map[string]int
	groupRDN map[string]string
}

// newLayout places the units and groups. pinned holds the RDN value
// each unit or group has in LDAP now: a record keeps it while it still
// fits its name and no sibling claims it first, so that a sibling of the
// same name, added or renamed, never moves it.
func newLayout(base string, units map[string]*directory.OrgUnit,
	groups map[string]*directory.Group, pinned map[string]string) *layout {
	l := &layout{
		base:     base,
		units:    units,
		unitRDN:  map[string]string{},
		unitDN:   map[string]string{},
		depth:    map[string]int{},
		groupRDN: map[string]string{},
	}

	// Siblings by parent; a unit whose parent is missing sits under
	// the base.
	byParent := map[string][]named{}
	for _, u := range units {
		p := ""
		if u.ParentID != nil && units[*u.ParentID] != nil {
			p = *u.ParentID
		}
		byParent[p] = append(byParent[p], named{u.ID, u.Name})
	}
	for p, kids := range byParent {
		var reserved []string
		if p == "" {
			reserved = []string{FormerStaffOU, GroupsOU}
		}
		for id, v := range assignRDNs(kids, reserved, pinned) {
			l.unitRDN[id] = v
		}
	}
	var gs []named
	for _, g := range groups {
		gs = append(gs, named{g.ID, g.Name})
	}
	l.groupRDN = assignRDNs(gs, nil, pinned)

	for id := range units {
		l.dnOf(id, 0)
	}
	return l
}

// named is a record to be given an RDN value.
type named struct{ id, name string }

// suffixed answers the RDN value of a record whose name a sibling also
// has: the name and the last eight characters of its id, which are
// random in a version 7 UUID.
func suffixed(n named) string {
	id := n.id
	if len(id) > 8 {
		id = id[len(id)-8:]
	}
	return n.name + " [" + id + "]"
}

// assignRDNs gives siblings distinct RDN values. Pinned values that still
// fit are kept first, then the plain name where it is free, else the
// suffixed name. Ties go to the older id, which comes first in order.
func assignRDNs(kids []named, reserved []string, pinned map[string]string) map[string]string {
	sort.Slice(kids, func(i, j int) bool { return kids[i].id < kids[j].id })
	taken := map[string]bool{}
	for _, r := range reserved {
		taken[rdnKey(r)] = true
	}
	out := map[string]string{}
	for _, k := range kids {
		v, ok := pinned[k.id]
		if !ok || (v != k.name && v != suffixed(k)) || taken[rdnKey(v)] {
			continue
		}
		taken[rdnKey(v)] = true
		out[k.id] = v
	}
	for _, k := range kids {
		if _, ok := out[k.id]; ok {
			continue
		}
		name := k.name
		if strings.TrimSpace(name) == "" {
			name = k.id
		}
		v := name
		if taken[rdnKey(v)] {
			v = suffixed(named{k.id, name})
		}
		if taken[rdnKey(v)] {
			v = name + " [" + k.id + "]"
		}
		taken[rdnKey(v)] = true
		out[k.id] = v
	}
	return out
}

// dnOf answers a unit's DN, working up to the base. A parent chain that
// loops (which the directory refuses, but a hand-edited database could
// hold) is cut where it loops.
func (l *layout) dnOf(id string, hops int) string {
	if dn, ok := l.unitDN[id]; ok {
		return dn
	}
	u := l.units[id]
	parent, depth := l.base, 1
	if u.ParentID != nil && l.units[*u.ParentID] != nil && hops < 64 {
		parent = l.dnOf(*u.ParentID, hops+1)
		depth = l.depth[*u.ParentID] + 1
	}
	dn := "ou=" + escapeRDNValue(l.unitRDN[id]) + "," + parent
	l.unitDN[id] = dn
	l.depth[id] = depth
	return dn
}

func (l *layout) formerStaffDN() string { return "ou=" + FormerStaffOU + "," + l.base }
func (l *layout) groupsDN() string      { return "ou=" + GroupsOU + "," + l.base }

// personDN answers where a person's entry goes: in their unit while
// enabled, in the former-staff unit otherwise.
func (l *layout) personDN(p *personRow) string {
	rdn := "uid=" + escapeRDNValue(p.Login) + ","
	if !p.enabled() {
		return rdn + l.formerStaffDN()
	}
	if p.UnitID != nil {
		if dn, ok := l.unitDN[*p.UnitID]; ok {
			return rdn + dn
		}
	}
	return rdn + l.base
}

func (l *layout) groupDN(g *directory.Group) string {
	return "cn=" + escapeRDNValue(l.groupRDN[g.ID]) + "," + l.groupsDN()
}

// baseEntry answers the entry of the base DN, for a server that lacks
// it: a dcObject organization for "dc=", an organization for "o=", an
// organizationalUnit otherwise.
func baseEntry(base string) (*Entry, error) {
	first, _, _ := strings.Cut(base, ",")
	attr, val, ok := strings.Cut(first, "=")
	if !ok {
		return nil, fmt.Errorf("ldapmirror: base DN %q has no attribute=value", base)
	}
	val = unescapeSimple(val)
	e := &Entry{DN: base, Kind: kindBase, Attrs: map[string][]string{}}
	switch strings.ToLower(strings.TrimSpace(attr)) {
	case "dc":
		e.Attrs["objectClass"] = []string{"top", "dcObject", "organization"}
		e.Attrs["dc"] = []string{val}
		e.Attrs["o"] = []string{val}
	case "o":
		e.Attrs["objectClass"] = []string{"top", "organization"}
		e.Attrs["o"] = []string{val}
	case "ou":
		e.Attrs["objectClass"] = []string{"top", "organizationalUnit"}
		e.Attrs["ou"] = []string{val}
	default:
		return nil, fmt.Errorf("ldapmirror: base DN %q: want dc=, o= or ou= first", base)
	}
	return e, nil
}

// unescapeSimple undoes the backslash escapes of RFC 4514 §2.4 written
// as a backslash and the character; hex pairs are decoded too.
func unescapeSimple(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			if i+2 < len(v) && isHex(v[i+1]) && isHex(v[i+2]) {
				var c byte
				fmt.Sscanf(v[i+1:i+3], "%02x", &c)
				b.WriteByte(c)
				i += 2
				continue
			}
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func (l *layout) containers() []*Entry {
	mk := func(name, id string) *Entry {
		return &Entry{
			DN: "ou=" + name + "," + l.base, ID: id, Kind: kindContainer, Depth: 1,
			Attrs: map[string][]string{
				"objectClass":      {"top", "organizationalUnit", "extensibleObject"},
				"ou":               {name},
				"uniqueIdentifier": {id},
			},
		}
	}
	return []*Entry{mk(FormerStaffOU, formerStaffID), mk(GroupsOU, groupsID)}
}

// unitEntry answers a unit's entry. Its ou holds the RDN value and, when
// that carries a suffix, the plain name too, so that (ou=NAME) finds it.
func (l *layout) unitEntry(id string) *Entry {
	u := l.units[id]
	ou := []string{l.unitRDN[id]}
	if u.Name != ou[0] && strings.TrimSpace(u.Name) != "" {
		ou = append(ou, u.Name)
	}
	return &Entry{
		DN: l.unitDN[id], ID: id, Kind: kindUnit, Depth: l.depth[id],
		Attrs: map[string][]string{
			"objectClass":      {"top", "organizationalUnit", "extensibleObject"},
			"ou":               ou,
			"uniqueIdentifier": {id},
		},
	}
}

// personEntry answers a person's entry; see the package comment for
// the attributes.
func (l *layout) personEntry(p *personRow) *Entry {
	a := map[string][]string{
		"objectClass": {"top", "person", "organizationalPerson",
			"inetOrgPerson", "extensibleObject"},
		"uid":              {p.Login},
		"uniqueIdentifier": {p.ID},
	}
	name := strings.TrimSpace(p.DisplayName)
	if name == "" {
		// cn and sn are required; the login is all there is.
		name = p.Login
	}
	a["cn"] = []string{name}
	a["displayName"] = []string{name}
	sn, given := splitName(name)
	a["sn"] = []string{sn}
	set := func(attr, v string) {
		if v = strings.TrimSpace(v); v != "" {
			a[attr] = []string{v}
		}
	}
	set("givenName", given)
	set("mail", p.Address)
	set("employeeNumber", p.EmployeeNo)
	set("title", p.Title)
	if printableTelephone(p.Mobile) {
		a["mobile"] = []string{p.Mobile}
	}
	if printableTelephone(p.WorkPhone) {
		a["telephoneNumber"] = []string{p.WorkPhone}
	}
	depth := 2
	if p.enabled() {
		if p.UnitID != nil && l.units[*p.UnitID] != nil {
			set("ou", l.units[*p.UnitID].Name)
			depth = l.depth[*p.UnitID] + 1
		}
		if p.PasswordHash != "" {
			// The argon2 module of OpenLDAP verifies the PHC string
			// that directory.HashPassword writes.
			a["userPassword"] = []string{"{ARGON2}" + p.PasswordHash}
		}
	}
	return &Entry{DN: l.personDN(p), ID: p.ID, Kind: kindPerson, Depth: depth, Attrs: a}
}

// groupEntry answers a group's entry. groupOfNames requires a member
// (RFC 4519 §3.5), so a group with no enabled member lists the base DN,
// which no application takes for a person.
func (l *layout) groupEntry(g *directory.Group, members []directory.GroupMember,
	people map[string]*personRow) *Entry {
	var dns []string
	seen := map[string]bool{}
	for _, m := range members {
		var dn string
		switch m.MemberKind {
		case directory.MemberPerson:
			if p := people[m.MemberID]; p != nil && p.enabled() {
				dn = l.personDN(p)
			}
		case directory.MemberUnit:
			dn = l.unitDN[m.MemberID]
		}
		if dn != "" && !seen[normDN(dn)] {
			seen[normDN(dn)] = true
			dns = append(dns, dn)
		}
	}
	if len(dns) == 0 {
		dns = []string{l.base}
	}
	sort.Strings(dns)
	return &Entry{
		DN: l.groupDN(g), ID: g.ID, Kind: kindGroup, Depth: 2,
		Attrs: map[string][]string{
			"objectClass":      {"top", "groupOfNames", "extensibleObject"},
			"cn":               {l.groupRDN[g.ID]},
			"uniqueIdentifier": {g.ID},
			"member":           dns,
		},
	}
}

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		// objectClass first reads best in LDIF.
		if (keys[i] == "objectClass") != (keys[j] == "objectClass") {
			return keys[i] == "objectClass"
		}
		return keys[i] < keys[j]
	})
	return keys
}
