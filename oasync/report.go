package oasync

import "fmt"

// Report says what an import did, or with DryRun what it would do. The
// snapshot import answers it, and so does the import of incremental
// changes, where Absent stays 0. Field names are part of the HTTP API.
type Report struct {
	DryRun bool `json:"dry_run"`
	// Elements is how many elements the input held.
	Elements int `json:"elements"`

	Org    Counts `json:"org"`
	Dept   Counts `json:"dept"`
	Post   Counts `json:"post"`
	Person Counts `json:"person"`
	Group  Counts `json:"group"`

	Accounts AccountCounts `json:"accounts"`
	// PersonPosts and GroupMembers count the links between records that
	// were made and undone.
	PersonPosts  LinkCounts `json:"person_posts"`
	GroupMembers LinkCounts `json:"group_members"`

	Warnings   []Warning `json:"warnings"`
	DurationMS int64     `json:"duration_ms"`
}

// Counts sorts the elements of one type by what happened to their
// record. Each element is counted once: an element that became
// unavailable is counted as disabled even if other fields changed too.
type Counts struct {
	Created   int `json:"created"`
	Updated   int `json:"updated"`
	Disabled  int `json:"disabled"`
	Enabled   int `json:"enabled"`
	Unchanged int `json:"unchanged"`
	// Absent counts records of this type that came from the OA but are
	// not in the snapshot. They are left as they are.
	Absent int `json:"absent"`
}

// AccountCounts counts mail accounts opened, disabled and enabled again.
// An account opened for a person who has left is counted as created, not
// as disabled.
type AccountCounts struct {
	Created  int `json:"created"`
	Disabled int `json:"disabled"`
	Enabled  int `json:"enabled"`
}

// LinkCounts counts links added and removed.
type LinkCounts struct {
	Added   int `json:"added"`
	Removed int `json:"removed"`
}

// Warning is something applied with a compromise, or left out, that an
// operator may want to put right in the OA.
type Warning struct {
	// Index is the element's position in the input; -1 when the warning
	// is about no one element.
	Index   int    `json:"index"`
	ID      string `json:"id,omitempty"`
	Type    string `json:"type,omitempty"`
	Name    string `json:"name,omitempty"`
	Message string `json:"message"`
}

// counts answers the Counts of an element type.
func (r *Report) counts(typ string) *Counts {
	switch typ {
	case typeOrg:
		return &r.Org
	case typeDept:
		return &r.Dept
	case typePost:
		return &r.Post
	case typePerson:
		return &r.Person
	case typeGroup:
		return &r.Group
	}
	return nil
}

func (r *Report) warn(el *element, format string, args ...any) {
	w := Warning{Index: -1, Message: fmt.Sprintf(format, args...)}
	if el != nil {
		w.Index, w.ID, w.Type, w.Name = el.Index, string(el.ID), el.Type, el.Name
	}
	r.Warnings = append(r.Warnings, w)
}
