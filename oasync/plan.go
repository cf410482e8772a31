package oasync

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/egretair/egret/directory"
)

// plan is what an import writes, in the order it is written, with its
// report and change-log rows.
type plan struct {
	report  Report
	changes []directory.Change

	unitCreates    []directory.OrgUnit // parents before children
	unitUpdates    []rowUpdate
	postCreates    []directory.Post
	postUpdates    []rowUpdate
	personCreates  []directory.Person
	personUpdates  []rowUpdate
	loginMoves     []string // people whose login_lower changes
	accountCreates []directory.Account
	accountUpdates []rowUpdate
	linkAdds       []directory.PersonPost
	linkRemoves    []directory.PersonPost
	groupCreates   []directory.Group
	groupUpdates   []rowUpdate
	memberAdds     []directory.GroupMember
	memberRemoves  []directory.GroupMember

	// newAddr is the element that gets each new account, by address.
	newAddr map[string]*element
}

// rowUpdate is the columns of one row that change.
type rowUpdate struct {
	id  string
	set map[string]any
}

// planner compares a snapshot with the directory.
type planner struct {
	domain      string
	holdingName string
	now         time.Time
	// full is set for a full snapshot, which disables the people it
	// lacks; a page of changes leaves them alone.
	full bool
	st   *dirState
	ps   problems
	pl   *plan

	// els are the valid elements in input order; byOA finds them by OA
	// id, and rec gives the id of the record each one becomes.
	els  []*element
	byOA map[string]*element
	rec  map[string]string

	// holdingID is the holding unit's id once needed; holdingRec is set
	// when this import creates it.
	holdingID  string
	holdingRec *directory.OrgUnit

	// unitParent is the new parent of each unit of the snapshot, and
	// placed the unit of each post and person, both by record id.
	unitParent map[string]*string
	placed     map[string]*string

	// addr and alt are each person's address and alternative address, by
	// OA id.
	addr map[string]string
	alt  map[string]string

	// held is the posts each person holds before the import.
	held map[string][]string
	// err is the first change-log record that could not be encoded.
	err error
}

// planSnapshot checks decoded input against the directory and plans the
// changes that make the directory hold it: all of it for a full
// snapshot, the elements given for a page of changes (full false). The
// error is an *InvalidError listing every problem found.
func planSnapshot(d *decoded, st *dirState, domain, holdingName string, now time.Time, full bool) (*plan, error) {
	pn := &planner{
		domain:      domain,
		holdingName: holdingName,
		now:         now,
		full:        full,
		st:          st,
		ps:          d.problems,
		pl: &plan{report: Report{
			Elements:         len(d.elements),
			Warnings:         []Warning{},
			DisabledAccounts: []DisabledAccount{},
		}},
		byOA:       make(map[string]*element, len(d.elements)),
		rec:        make(map[string]string, len(d.elements)),
		unitParent: make(map[string]*string),
		placed:     make(map[string]*string, len(d.elements)),
		addr:       make(map[string]string, len(d.elements)),
		alt:        make(map[string]string, len(d.elements)),
	}

	pn.index(d.elements)
	pn.placeAll()
	pn.checkCycles()
	pn.checkPeople()
	if err := pn.ps.err(); err != nil {
		return nil, err
	}

	pn.planUnits()
	pn.planPosts()
	links := pn.planLinks()
	pn.planPeople(links)
	pn.planGroups()
	if full {
		pn.countAbsent()
		pn.planAbsent()
	}
	if pn.err != nil {
		return nil, pn.err
	}
	return pn.pl, nil
}

// placeAll finds the parent unit of every unit, post and person.
func (pn *planner) placeAll() {
	for _, el := range pn.els {
		rid := pn.rec[string(el.ID)]
		switch el.Type {
		case typeOrg, typeDept:
			pn.unitParent[rid] = pn.parentUnit(el)
		case typePost, typePerson:
			pn.placed[rid] = pn.parentUnit(el)
		}
	}
}

// parentUnit answers the id of the unit an element belongs under: its
// parent from the snapshot or the directory, else the holding unit.
// Units without a parent are roots; posts and people go to the holding
// unit.
func (pn *planner) parentUnit(el *element) *string {
	parent := string(el.Parent)
	if parent == "" {
		if el.isUnit() {
			return nil
		}
		pn.pl.report.warn(el, "has no parent; placed in the holding unit")
		return pn.holding()
	}
	if p := pn.byOA[parent]; p != nil {
		if !p.isUnit() {
			pn.ps.add(el, "parent", "parent %s is a %s, not an org or dept", describe(p), p.Type)
			return nil
		}
		id := pn.rec[parent]
		return &id
	}
	if u := pn.st.unitByOA[parent]; u != nil {
		return &u.ID
	}
	pn.pl.report.warn(el, "parent %s is neither in the snapshot nor in the directory; "+
		"placed in the holding unit", parent)
	return pn.holding()
}

// holding answers the holding unit's id, planning the unit on first need
// when the directory has none. It goes under the org root when there is
// exactly one, else at the top.
func (pn *planner) holding() *string {
	if pn.holdingID == "" {
		if h := pn.st.holding; h != nil {
			pn.holdingID = h.ID
		} else {
			pn.holdingRec = &directory.OrgUnit{
				ID:        directory.NewID(),
				Kind:      directory.UnitHolding,
				Name:      pn.holdingName,
				ParentID:  pn.root(),
				Available: true,
				CreatedAt: pn.now,
				UpdatedAt: pn.now,
			}
			pn.holdingID = pn.holdingRec.ID
		}
	}
	id := pn.holdingID
	return &id
}

// root answers the id of the org root, if there is exactly one.
func (pn *planner) root() *string {
	roots := map[string]bool{}
	for _, el := range pn.els {
		if el.Type == typeOrg && el.Parent == "" {
			roots[pn.rec[string(el.ID)]] = true
		}
	}
	for _, u := range pn.st.unitByID {
		if u.Kind != directory.UnitOrg || u.ParentID != nil {
			continue
		}
		if u.OAID != nil && pn.byOA[*u.OAID] != nil {
			continue // the snapshot decides where it stands
		}
		roots[u.ID] = true
	}
	if len(roots) != 1 {
		return nil
	}
	for id := range roots {
		return &id
	}
	return nil
}

// outcome counts one element and answers the change-log operation for
// it, "" when nothing changed.
func outcome(c *Counts, created, wasOn, isOn, changed bool) string {
	switch {
	case created:
		c.Created++
		return directory.OpCreate
	case wasOn && !isOn:
		c.Disabled++
		return directory.OpDisable
	case !wasOn && isOn:
		c.Enabled++
		return directory.OpEnable
	case changed:
		c.Updated++
		return directory.OpUpdate
	}
	c.Unchanged++
	return ""
}

// log appends a change-log row with the record after the change and, for
// a record that existed, as it was before (nil for none).
func (pn *planner) log(entity, id, op string, record, before any) {
	data, err := json.Marshal(record)
	var prev *string
	if err == nil && before != nil {
		var b []byte
		if b, err = json.Marshal(before); err == nil {
			prev = ptr(string(b))
		}
	}
	if err != nil {
		// The records are plain strings, numbers and times; only a time
		// outside the years 0-9999 could fail here.
		if pn.err == nil {
			pn.err = fmt.Errorf("oasync: change log of %s %s: %w", entity, id, err)
		}
		return
	}
	pn.pl.changes = append(pn.pl.changes, directory.Change{
		At: pn.now, Entity: entity, EntityID: id, Op: op, Data: string(data), Before: prev,
	})
}

// changes collects the columns that differ between a row and its new
// state.
type changes map[string]any

func diff[T comparable](c changes, col string, old, new T) {
	if old != new {
		c[col] = new
	}
}

func diffRef(c changes, col string, old, new *string) {
	if deref(old) != deref(new) || (old == nil) != (new == nil) {
		c[col] = new
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func ptr(s string) *string { return &s }

func alterTime(el *element) string {
	t, _ := normAlterTime(el.AlterTime)
	return t
}

// keptAlterTime answers the alter time to keep for a record an element
// updates: the element's, or the one the record holds when the element
// has none that can be kept. Erasing the record's would lift the stale
// rule from it, and a late page could then roll it back.
func keptAlterTime(el *element, held string) string {
	if t := alterTime(el); t != "" {
		return t
	}
	return held
}

func (pn *planner) planUnits() {
	type update struct {
		u   directory.OrgUnit
		op  string
		old *directory.OrgUnit
	}
	var updates []update
	for _, el := range pn.els {
		if !el.isUnit() {
			continue
		}
		oa := string(el.ID)
		order, _ := sortOrder(el)
		u := directory.OrgUnit{
			ID:          pn.rec[oa],
			OAID:        ptr(oa),
			Kind:        directory.UnitDept,
			Name:        el.Name,
			ParentID:    pn.unitParent[pn.rec[oa]],
			SortOrder:   order,
			Available:   el.available(),
			OAAlterTime: alterTime(el),
			CreatedAt:   pn.now,
			UpdatedAt:   pn.now,
		}
		if el.Type == typeOrg {
			u.Kind = directory.UnitOrg
		}
		counts := pn.pl.report.counts(el.Type)

		old := pn.st.unitByOA[oa]
		if old == nil {
			outcome(counts, true, false, true, true)
			pn.pl.unitCreates = append(pn.pl.unitCreates, u)
			continue
		}
		u.OAAlterTime = keptAlterTime(el, old.OAAlterTime)
		c := changes{}
		diff(c, "kind", old.Kind, u.Kind)
		diff(c, "name", old.Name, u.Name)
		diffRef(c, "parent_id", old.ParentID, u.ParentID)
		diff(c, "sort_order", old.SortOrder, u.SortOrder)
		diff(c, "available", old.Available, u.Available)
		diff(c, "oa_alter_time", old.OAAlterTime, u.OAAlterTime)
		if op := outcome(counts, false, old.Available, u.Available, len(c) > 0); op != "" {
			u.CreatedAt = old.CreatedAt
			c["updated_at"] = pn.now
			pn.pl.unitUpdates = append(pn.pl.unitUpdates, rowUpdate{u.ID, c})
			updates = append(updates, update{u, op, old})
		}
	}
	if h := pn.holdingRec; h != nil {
		pn.pl.unitCreates = append(pn.pl.unitCreates, *h)
		pn.pl.report.warn(nil, "holding unit %q (%s) created for elements whose parent is unknown",
			h.Name, h.ID)
	}
	parentsFirst(pn.pl.unitCreates)

	for _, u := range pn.pl.unitCreates {
		pn.log(directory.EntityUnit, u.ID, directory.OpCreate, u, nil)
	}
	for _, up := range updates {
		pn.log(directory.EntityUnit, up.u.ID, up.op, up.u, up.old)
	}
}

// parentsFirst orders new units so that each comes after its parent,
// which the foreign key on parent_id needs. Cycles were refused before.
func parentsFirst(units []directory.OrgUnit) {
	isNew := make(map[string]bool, len(units))
	parent := make(map[string]string, len(units))
	for _, u := range units {
		isNew[u.ID] = true
		if u.ParentID != nil {
			parent[u.ID] = *u.ParentID
		}
	}
	depth := make(map[string]int, len(units))
	var depthOf func(id string, hops int) int
	depthOf = func(id string, hops int) int {
		if d, ok := depth[id]; ok {
			return d
		}
		d := 0
		if p, ok := parent[id]; ok && isNew[p] && hops < len(units) {
			d = depthOf(p, hops+1) + 1
		}
		depth[id] = d
		return d
	}
	for _, u := range units {
		depthOf(u.ID, 0)
	}
	slices.SortStableFunc(units, func(a, b directory.OrgUnit) int {
		return cmp.Compare(depth[a.ID], depth[b.ID])
	})
}

func (pn *planner) planPosts() {
	type update struct {
		p   directory.Post
		op  string
		old *directory.Post
	}
	var updates []update
	for _, el := range pn.els {
		if el.Type != typePost {
			continue
		}
		oa := string(el.ID)
		order, _ := sortOrder(el)
		p := directory.Post{
			ID:          pn.rec[oa],
			OAID:        ptr(oa),
			Name:        el.Name,
			UnitID:      pn.placed[pn.rec[oa]],
			SortOrder:   order,
			Available:   el.available(),
			OAAlterTime: alterTime(el),
			CreatedAt:   pn.now,
			UpdatedAt:   pn.now,
		}
		old := pn.st.postByOA[oa]
		if old == nil {
			outcome(&pn.pl.report.Post, true, false, true, true)
			pn.pl.postCreates = append(pn.pl.postCreates, p)
			continue
		}
		p.OAAlterTime = keptAlterTime(el, old.OAAlterTime)
		c := changes{}
		diff(c, "name", old.Name, p.Name)
		diffRef(c, "unit_id", old.UnitID, p.UnitID)
		diff(c, "sort_order", old.SortOrder, p.SortOrder)
		diff(c, "available", old.Available, p.Available)
		diff(c, "oa_alter_time", old.OAAlterTime, p.OAAlterTime)
		if op := outcome(&pn.pl.report.Post, false, old.Available, p.Available, len(c) > 0); op != "" {
			p.CreatedAt = old.CreatedAt
			c["updated_at"] = pn.now
			pn.pl.postUpdates = append(pn.pl.postUpdates, rowUpdate{p.ID, c})
			updates = append(updates, update{p, op, old})
		}
	}
	for _, p := range pn.pl.postCreates {
		pn.log(directory.EntityPost, p.ID, directory.OpCreate, p, nil)
	}
	for _, up := range updates {
		pn.log(directory.EntityPost, up.p.ID, up.op, up.p, up.old)
	}
}

// postRef finds the record id of a post by OA id, in the snapshot or the
// directory.
func (pn *planner) postRef(oa string) (string, bool) {
	if el := pn.byOA[oa]; el != nil {
		return pn.rec[oa], el.Type == typePost
	}
	if p := pn.st.postByOA[oa]; p != nil {
		return p.ID, true
	}
	return "", false
}

// personRef finds the record id of a person by OA id, in the snapshot or
// the directory.
func (pn *planner) personRef(oa string) (string, bool) {
	if el := pn.byOA[oa]; el != nil {
		return pn.rec[oa], el.Type == typePerson
	}
	if p := pn.st.personByOA[oa]; p != nil {
		return p.ID, true
	}
	return "", false
}

// linkPlan is the outcome of reconciling who holds which post.
type linkPlan struct {
	// posts is each person's posts after the import, for people whose
	// posts change.
	posts map[string][]string
}

// planLinks makes the posts of the snapshot's people and the holders of
// its posts exactly what the snapshot says: the union of each person's
// posts and each post's persons. Links between a person and a post both
// outside the snapshot are left alone.
func (pn *planner) planLinks() linkPlan {
	want := make(map[directory.PersonPost]bool)
	inPeople := make(map[string]bool)
	inPosts := make(map[string]bool)
	for _, el := range pn.els {
		switch el.Type {
		case typePerson:
			pid := pn.rec[string(el.ID)]
			inPeople[pid] = true
			for _, oa := range strs(el.Posts) {
				if post, ok := pn.postRef(oa); ok {
					want[directory.PersonPost{PersonID: pid, PostID: post}] = true
				} else {
					pn.pl.report.warn(el, "holds post %s, which is neither a post in the snapshot "+
						"nor in the directory; left out", oa)
				}
			}
		case typePost:
			post := pn.rec[string(el.ID)]
			inPosts[post] = true
			for _, oa := range strs(el.Persons) {
				if pid, ok := pn.personRef(oa); ok {
					want[directory.PersonPost{PersonID: pid, PostID: post}] = true
				} else {
					pn.pl.report.warn(el, "lists person %s, who is neither a person in the snapshot "+
						"nor in the directory; left out", oa)
				}
			}
		}
	}

	have := make(map[directory.PersonPost]bool, len(pn.st.links))
	touched := make(map[string]bool)
	for _, l := range pn.st.links {
		have[l] = true
		if (inPeople[l.PersonID] || inPosts[l.PostID]) && !want[l] {
			pn.pl.linkRemoves = append(pn.pl.linkRemoves, l)
			touched[l.PersonID] = true
		}
	}
	for l := range want {
		if !have[l] {
			pn.pl.linkAdds = append(pn.pl.linkAdds, l)
			touched[l.PersonID] = true
		}
	}
	sortLinks(pn.pl.linkAdds)
	sortLinks(pn.pl.linkRemoves)
	pn.pl.report.PersonPosts = LinkCounts{Added: len(pn.pl.linkAdds), Removed: len(pn.pl.linkRemoves)}

	lp := linkPlan{posts: make(map[string][]string, len(touched))}
	removed := make(map[directory.PersonPost]bool, len(pn.pl.linkRemoves))
	for _, l := range pn.pl.linkRemoves {
		removed[l] = true
	}
	for _, l := range pn.st.links {
		if touched[l.PersonID] && !removed[l] {
			lp.posts[l.PersonID] = append(lp.posts[l.PersonID], l.PostID)
		}
	}
	for _, l := range pn.pl.linkAdds {
		lp.posts[l.PersonID] = append(lp.posts[l.PersonID], l.PostID)
	}
	for id := range touched {
		if lp.posts[id] == nil {
			lp.posts[id] = []string{}
		}
		slices.Sort(lp.posts[id])
	}
	return lp
}

func sortLinks(ls []directory.PersonPost) {
	slices.SortFunc(ls, func(a, b directory.PersonPost) int {
		return cmp.Or(strings.Compare(a.PersonID, b.PersonID), strings.Compare(a.PostID, b.PostID))
	})
}

// personRecord is a person as the change log carries it: with the posts
// they hold, which the LDAP mirror shows as titles.
type personRecord struct {
	directory.Person
	Posts []string `json:"posts"`
}

// postsOf answers the posts a person holds after the import.
func (pn *planner) postsOf(id string, lp linkPlan) []string {
	if ps, ok := lp.posts[id]; ok {
		return ps
	}
	return pn.heldBefore(id)
}

// heldBefore answers the posts a person holds before the import.
func (pn *planner) heldBefore(id string) []string {
	if pn.held == nil {
		pn.held = make(map[string][]string)
		for _, l := range pn.st.links {
			pn.held[l.PersonID] = append(pn.held[l.PersonID], l.PostID)
		}
		for _, ps := range pn.held {
			slices.Sort(ps)
		}
	}
	if ps := pn.held[id]; ps != nil {
		return ps
	}
	return []string{}
}

func (pn *planner) planPeople(lp linkPlan) {
	type change struct {
		p   directory.Person
		op  string
		old *directory.Person
	}
	var creates, updates []change
	var accountChanges []directory.Account
	var accountOps []string
	var accountOld []*directory.Account
	seen := make(map[string]bool)
	for _, el := range pn.els {
		if el.Type != typePerson {
			continue
		}
		oa := string(el.ID)
		rid := pn.rec[oa]
		seen[rid] = true
		order, _ := sortOrder(el)
		status := directory.PersonActive
		if !el.available() {
			status = directory.PersonLeft
		}
		name := el.Name
		if name == "" {
			name = string(el.LoginName)
		}
		p := directory.Person{
			ID:          rid,
			OAID:        ptr(oa),
			Kind:        directory.PersonStaff,
			Login:       string(el.LoginName),
			LoginLower:  loginKey(string(el.LoginName)),
			DisplayName: name,
			Nickname:    el.NickName,
			EmployeeNo:  string(el.No),
			Mobile:      normMobile(string(el.MobileNo)),
			MobileRaw:   string(el.MobileNo),
			WorkPhone:   string(el.WorkPhone),
			Sex:         el.Sex,
			AltEmail:    pn.alt[oa],
			UnitID:      pn.placed[rid],
			SortOrder:   order,
			Status:      status,
			OAAlterTime: alterTime(el),
			CreatedAt:   pn.now,
			UpdatedAt:   pn.now,
		}

		old := pn.st.personByOA[oa]
		if old == nil {
			outcome(&pn.pl.report.Person, true, false, true, true)
			pn.pl.personCreates = append(pn.pl.personCreates, p)
			creates = append(creates, change{p, directory.OpCreate, nil})
		} else {
			// Kind is egret's to say (shared, service); the OA does not
			// send it.
			p.Kind = old.Kind
			p.OAAlterTime = keptAlterTime(el, old.OAAlterTime)
			c := changes{}
			diff(c, "login", old.Login, p.Login)
			diff(c, "login_lower", old.LoginLower, p.LoginLower)
			diff(c, "display_name", old.DisplayName, p.DisplayName)
			diff(c, "nickname", old.Nickname, p.Nickname)
			diff(c, "employee_no", old.EmployeeNo, p.EmployeeNo)
			diff(c, "mobile", old.Mobile, p.Mobile)
			diff(c, "mobile_raw", old.MobileRaw, p.MobileRaw)
			diff(c, "work_phone", old.WorkPhone, p.WorkPhone)
			diff(c, "sex", old.Sex, p.Sex)
			diff(c, "alt_email", old.AltEmail, p.AltEmail)
			diffRef(c, "unit_id", old.UnitID, p.UnitID)
			diff(c, "sort_order", old.SortOrder, p.SortOrder)
			diff(c, "status", old.Status, p.Status)
			diff(c, "oa_alter_time", old.OAAlterTime, p.OAAlterTime)
			_, postsChanged := lp.posts[rid]
			wasOn := old.Status == directory.PersonActive
			isOn := p.Status == directory.PersonActive
			op := outcome(&pn.pl.report.Person, false, wasOn, isOn, len(c) > 0 || postsChanged)
			if op != "" {
				p.CreatedAt = old.CreatedAt
				if len(c) > 0 {
					c["updated_at"] = pn.now
					pn.pl.personUpdates = append(pn.pl.personUpdates, rowUpdate{rid, c})
				} else {
					p.UpdatedAt = old.UpdatedAt
				}
				if _, moves := c["login_lower"]; moves {
					pn.pl.loginMoves = append(pn.pl.loginMoves, rid)
				}
				updates = append(updates, change{p, op, old})
			}
		}

		acct, op := pn.planAccount(el, old, &p)
		if op != "" {
			accountChanges = append(accountChanges, acct)
			accountOps = append(accountOps, op)
			accountOld = append(accountOld, pn.st.accountByPerson[p.ID])
		}
	}

	for _, ch := range append(creates, updates...) {
		var before any
		if ch.old != nil {
			before = personRecord{*ch.old, pn.heldBefore(ch.old.ID)}
		}
		pn.log(directory.EntityPerson, ch.p.ID, ch.op, personRecord{ch.p, pn.postsOf(ch.p.ID, lp)}, before)
	}
	// People outside the snapshot whose posts changed because a post of
	// the snapshot no longer lists them, or now does.
	var others []string
	for id := range lp.posts {
		if !seen[id] && pn.st.personByID[id] != nil {
			others = append(others, id)
		}
	}
	slices.Sort(others)
	for _, id := range others {
		p := *pn.st.personByID[id]
		pn.log(directory.EntityPerson, id, directory.OpUpdate,
			personRecord{p, lp.posts[id]}, personRecord{p, pn.heldBefore(id)})
	}
	for i, a := range accountChanges {
		var before any
		if old := accountOld[i]; old != nil {
			before = old
		}
		pn.log(directory.EntityAccount, a.ID, accountOps[i], a, before)
	}
}

// planAccount decides what happens to a person's account: opened when
// missing, disabled when the person has left, enabled when they return.
func (pn *planner) planAccount(el *element, old, p *directory.Person) (directory.Account, string) {
	acct := pn.st.accountByPerson[p.ID]
	if acct == nil {
		status := directory.AccountEnabled
		if p.Status != directory.PersonActive {
			status = directory.AccountDisabled
		}
		a := directory.Account{
			ID:        directory.NewID(),
			PersonID:  ptr(p.ID),
			Address:   pn.addr[string(el.ID)],
			Status:    status,
			CreatedAt: pn.now,
			UpdatedAt: pn.now,
		}
		pn.pl.accountCreates = append(pn.pl.accountCreates, a)
		pn.pl.report.Accounts.Created++
		if pn.pl.newAddr == nil {
			pn.pl.newAddr = make(map[string]*element)
		}
		pn.pl.newAddr[a.Address] = el
		return a, directory.OpCreate
	}

	a := *acct
	switch {
	case p.Status != directory.PersonActive && a.Status == directory.AccountEnabled:
		a.Status = directory.AccountDisabled
		pn.pl.report.Accounts.Disabled++
		pn.disabled(&a, p, ReasonLeft)
	case p.Status == directory.PersonActive && old != nil && old.Status != directory.PersonActive &&
		a.Status == directory.AccountDisabled:
		a.Status = directory.AccountEnabled
		pn.pl.report.Accounts.Enabled++
	default:
		return a, ""
	}
	a.UpdatedAt = pn.now
	pn.pl.accountUpdates = append(pn.pl.accountUpdates, rowUpdate{a.ID, changes{
		"status": a.Status, "updated_at": pn.now,
	}})
	if a.Status == directory.AccountEnabled {
		return a, directory.OpEnable
	}
	return a, directory.OpDisable
}

// memberRef is a group member as the change log carries it.
type memberRef struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
}

// groupRecord is a group as the change log carries it, with its members.
type groupRecord struct {
	directory.Group
	Members []memberRef `json:"members"`
}

// resolveMember finds what a group member's OA id names.
func (pn *planner) resolveMember(oa string) (directory.GroupMember, string) {
	if el := pn.byOA[oa]; el != nil {
		m := directory.GroupMember{MemberID: pn.rec[oa]}
		switch el.Type {
		case typePerson:
			m.MemberKind = directory.MemberPerson
		case typePost:
			m.MemberKind = directory.MemberPost
		case typeOrg, typeDept:
			m.MemberKind = directory.MemberUnit
		default:
			return m, fmt.Sprintf("member %s is a group; groups within groups are not kept", describe(el))
		}
		return m, ""
	}
	member := func(kind, id string) (directory.GroupMember, string) {
		return directory.GroupMember{MemberKind: kind, MemberID: id}, ""
	}
	if p := pn.st.personByOA[oa]; p != nil {
		return member(directory.MemberPerson, p.ID)
	}
	if u := pn.st.unitByOA[oa]; u != nil {
		return member(directory.MemberUnit, u.ID)
	}
	if p := pn.st.postByOA[oa]; p != nil {
		return member(directory.MemberPost, p.ID)
	}
	if pn.st.groupByOA[oa] != nil {
		return directory.GroupMember{},
			fmt.Sprintf("member %s is a group; groups within groups are not kept", oa)
	}
	return directory.GroupMember{},
		fmt.Sprintf("member %s is neither in the snapshot nor in the directory; left out", oa)
}

func (pn *planner) planGroups() {
	for _, el := range pn.els {
		if el.Type != typeGroup {
			continue
		}
		oa := string(el.ID)
		g := directory.Group{
			ID:          pn.rec[oa],
			OAID:        ptr(oa),
			Name:        el.Name,
			Available:   el.available(),
			OAAlterTime: alterTime(el),
			CreatedAt:   pn.now,
			UpdatedAt:   pn.now,
		}

		want := make(map[directory.GroupMember]bool)
		var members []directory.GroupMember
		for _, m := range strs(el.Members) {
			gm, problem := pn.resolveMember(m)
			if problem != "" {
				pn.pl.report.warn(el, "%s", problem)
				continue
			}
			gm.GroupID = g.ID
			if !want[gm] {
				want[gm] = true
				members = append(members, gm)
			}
		}

		old := pn.st.groupByOA[oa]
		have := make(map[directory.GroupMember]bool)
		if old != nil {
			for _, m := range pn.st.members[old.ID] {
				have[m] = true
				if !want[m] {
					pn.pl.memberRemoves = append(pn.pl.memberRemoves, m)
				}
			}
		}
		added := 0
		for _, m := range members {
			if !have[m] {
				pn.pl.memberAdds = append(pn.pl.memberAdds, m)
				added++
			}
		}
		membersChanged := added > 0 || len(have) != len(want)

		var op string
		if old == nil {
			op = outcome(&pn.pl.report.Group, true, false, true, true)
			pn.pl.groupCreates = append(pn.pl.groupCreates, g)
		} else {
			g.OAAlterTime = keptAlterTime(el, old.OAAlterTime)
			c := changes{}
			diff(c, "name", old.Name, g.Name)
			diff(c, "available", old.Available, g.Available)
			diff(c, "oa_alter_time", old.OAAlterTime, g.OAAlterTime)
			op = outcome(&pn.pl.report.Group, false, old.Available, g.Available, len(c) > 0 || membersChanged)
			g.CreatedAt = old.CreatedAt
			if len(c) > 0 {
				c["updated_at"] = pn.now
				pn.pl.groupUpdates = append(pn.pl.groupUpdates, rowUpdate{g.ID, c})
			} else {
				g.UpdatedAt = old.UpdatedAt
			}
		}
		if op != "" {
			refs := make([]memberRef, len(members))
			for i, m := range members {
				refs[i] = memberRef{m.MemberKind, m.MemberID}
			}
			var before any
			if old != nil {
				was := make([]memberRef, 0, len(pn.st.members[old.ID]))
				for _, m := range pn.st.members[old.ID] {
					was = append(was, memberRef{m.MemberKind, m.MemberID})
				}
				before = groupRecord{*old, was}
			}
			pn.log(directory.EntityGroup, g.ID, op, groupRecord{g, refs}, before)
		}
	}
	pn.pl.report.GroupMembers = LinkCounts{Added: len(pn.pl.memberAdds), Removed: len(pn.pl.memberRemoves)}
}

// countAbsent counts the records from the OA that the snapshot lacks.
func (pn *planner) countAbsent() {
	missing := func(oa *string) bool { return oa != nil && pn.byOA[*oa] == nil }
	r := &pn.pl.report
	for _, u := range pn.st.unitByID {
		if missing(u.OAID) {
			switch u.Kind {
			case directory.UnitOrg:
				r.Org.Absent++
			case directory.UnitDept:
				r.Dept.Absent++
			}
		}
	}
	for _, p := range pn.st.postByOA {
		if missing(p.OAID) {
			r.Post.Absent++
		}
	}
	for _, p := range pn.st.personByOA {
		if missing(p.OAID) {
			r.Person.Absent++
		}
	}
	for _, g := range pn.st.groupByOA {
		if missing(g.OAID) {
			r.Group.Absent++
		}
	}
}

// disabled lists an account the import disables, for the report and the
// safety valve.
func (pn *planner) disabled(a *directory.Account, p *directory.Person, reason string) {
	pn.pl.report.DisabledAccounts = append(pn.pl.report.DisabledAccounts, DisabledAccount{
		AccountID: a.ID,
		Address:   a.Address,
		PersonID:  p.ID,
		OAID:      deref(p.OAID),
		Login:     p.Login,
		Name:      p.DisplayName,
		Reason:    reason,
	})
}

// planAbsent disables the people from the OA whom a full snapshot lacks:
// the OA no longer lists them, which is how it reports a person deleted
// rather than marked unavailable. They become "left" and their accounts
// are disabled, as for a leaver; the records stay.
func (pn *planner) planAbsent() {
	var gone []*directory.Person
	for oa, p := range pn.st.personByOA {
		if el := pn.byOA[oa]; el != nil && el.Type == typePerson {
			continue
		}
		gone = append(gone, p)
	}
	slices.SortFunc(gone, func(a, b *directory.Person) int { return strings.Compare(a.ID, b.ID) })

	for _, old := range gone {
		posts := pn.heldBefore(old.ID)
		if old.Status == directory.PersonActive {
			p := *old
			p.Status = directory.PersonLeft
			p.UpdatedAt = pn.now
			pn.pl.personUpdates = append(pn.pl.personUpdates, rowUpdate{p.ID, changes{
				"status": p.Status, "updated_at": pn.now,
			}})
			pn.pl.report.Person.Disabled++
			pn.log(directory.EntityPerson, p.ID, directory.OpDisable,
				personRecord{p, posts}, personRecord{*old, posts})
		}
		acct := pn.st.accountByPerson[old.ID]
		if acct == nil || acct.Status != directory.AccountEnabled {
			continue
		}
		a := *acct
		a.Status = directory.AccountDisabled
		a.UpdatedAt = pn.now
		pn.pl.accountUpdates = append(pn.pl.accountUpdates, rowUpdate{a.ID, changes{
			"status": a.Status, "updated_at": pn.now,
		}})
		pn.pl.report.Accounts.Disabled++
		pn.disabled(&a, old, ReasonAbsent)
		pn.log(directory.EntityAccount, a.ID, directory.OpDisable, a, acct)
	}
}
