package oasync

import "fmt"

// Report says what an import did, or with DryRun what it would do. The
// snapshot import answers it, and so does the import of incremental
// changes, where Absent stays 0. Field names are part of the HTTP API.
type Report struct {
	DryRun bool `json:"dry_run"`
	// Held is set when the import would disable more accounts than the
	// threshold allows: nothing was applied, and the plan waits under
	// PlanID for approval.
	Held   bool   `json:"held"`
	PlanID string `json:"plan_id,omitempty"`
	// OverThreshold is set when the plan disables more accounts than the
	// threshold; with DryRun it says the real run would be held.
	OverThreshold bool `json:"over_threshold"`
	// Threshold is the number of accounts an import may disable without
	// approval; -1 when the safety valve is off.
	Threshold int `json:"threshold"`

	// Source names the input: its kind and digest, and the envelope's
	// timeStamp where it had one.
	Source Source `json:"source"`
	// Elements is how many elements the input held.
	Elements int `json:"elements"`
	// Stale counts the elements of a page of changes that were older
	// than the record egret holds, and so were ignored; each also has a
	// warning.
	Stale int `json:"stale"`

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

	// DisabledAccounts lists every account the import disables, with
	// the reason: "left" (the OA says the person is no longer available)
	// or "absent" (a full snapshot lacks the person).
	DisabledAccounts []DisabledAccount `json:"disabled_accounts"`

	Warnings   []Warning `json:"warnings"`
	DurationMS int64     `json:"duration_ms"`
}

// Source identifies what an import read.
type Source struct {
	// Kind is "snapshot", "changes" or "pull".
	Kind string `json:"kind"`
	// Digest is the SHA-256 of the input as decompressed, in hex.
	Digest string `json:"digest"`
	// TimeStamp is the envelope's timeStamp, when it had one.
	TimeStamp string `json:"time_stamp,omitempty"`
}

// DisabledAccount is one account an import disables.
type DisabledAccount struct {
	AccountID string `json:"account_id"`
	Address   string `json:"address"`
	PersonID  string `json:"person_id"`
	OAID      string `json:"oa_id,omitempty"`
	Login     string `json:"login"`
	Name      string `json:"name"`
	// Reason is "left" or "absent".
	Reason string `json:"reason"`
}

// Reasons an account is disabled.
const (
	ReasonLeft   = "left"
	ReasonAbsent = "absent"
)

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
	// not in the snapshot. People among them who were active are also
	// counted as Disabled; units, posts and groups are left as they are.
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
