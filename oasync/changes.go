package oasync

import (
	"context"
	"io"
	"time"
)

// ImportChanges reads a page of EKP changes from r (the same forms as a
// snapshot, elements in ascending alterTime) and applies the elements it
// holds: new hires, leavers, transfers, renames, moves and rehires.
// Records the page does not name are left as they are.
//
// An element older than the record egret holds for its id is ignored,
// counted in Report.Stale and named in a warning, so that a late or
// replayed page rolls nothing back; an element as old as the record is
// applied, which changes nothing when it is the same. The page is
// otherwise checked, refused, held and applied as a snapshot is.
func (imp *Importer) ImportChanges(ctx context.Context, r io.Reader, opts Options) (*Report, error) {
	data, err := readInput(r)
	if err != nil {
		return nil, err
	}
	return imp.run(ctx, job{kind: KindChanges, data: data, opts: opts})
}

// dropStale removes from d the elements older than the records they
// would update, and answers a warning for each. Alter times are compared
// in their stored form, whose fixed width makes text order time order.
// An element without a readable alterTime, or a record without one, is
// never stale, and so is one whose record holds a time past the clock
// (see maxAhead).
func dropStale(d *decoded, st *dirState, now time.Time) []Warning {
	var warnings []Warning
	kept := d.elements[:0:0]
	for _, el := range d.elements {
		held := ""
		if !el.broken {
			held = heldAlterTime(el, st)
		}
		if aheadOfClock(held, now) {
			// Kept before such times were refused: it proves nothing.
			held = ""
		}
		t, ok := normAlterTime(el.AlterTime)
		if held == "" || !ok || t == "" || t >= held {
			kept = append(kept, el)
			continue
		}
		warnings = append(warnings, Warning{
			Index: el.Index, ID: string(el.ID), Type: el.Type, Name: el.Name,
			Message: "stale: alterTime " + t + " is older than the " + held +
				" egret holds; the element is ignored",
		})
	}
	d.elements = kept
	return warnings
}

// heldAlterTime answers the alter time of the record an element would
// update, "" when there is none.
func heldAlterTime(el *element, st *dirState) string {
	id := string(el.ID)
	switch el.Type {
	case typeOrg, typeDept:
		if u := st.unitByOA[id]; u != nil {
			return u.OAAlterTime
		}
	case typePost:
		if p := st.postByOA[id]; p != nil {
			return p.OAAlterTime
		}
	case typePerson:
		if p := st.personByOA[id]; p != nil {
			return p.OAAlterTime
		}
	case typeGroup:
		if g := st.groupByOA[id]; g != nil {
			return g.OAAlterTime
		}
	}
	return ""
}
