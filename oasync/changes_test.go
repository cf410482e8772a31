package oasync_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/directory/dirtest"
	"github.com/egretair/egret/oasync"
)

var pageNames = []string{
	"ekp-changes-01.json", "ekp-changes-02.json", "ekp-changes-03.json",
	"ekp-changes-04.json", "ekp-changes-05.json",
}

func mustChanges(t testing.TB, s *directory.Store, input []byte, dry bool) *oasync.Report {
	t.Helper()
	rep, err := importer(s).ImportChanges(context.Background(), bytes.NewReader(input),
		oasync.Options{DryRun: dry})
	if err != nil {
		t.Fatalf("changes: %v", err)
	}
	return rep
}

// elementsOf answers the raw elements of an EKP export, in order, with
// their ids.
func elementsOf(t testing.TB, input []byte) (ids []string, raws []json.RawMessage) {
	t.Helper()
	if len(input) > 1 && input[0] == 0x1f && input[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(input))
		if err != nil {
			t.Fatal(err)
		}
		if input, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	var env struct {
		Message string `json:"message"`
	}
	if err := json.Unmarshal(input, &env); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(env.Message), &raws); err != nil {
		t.Fatal(err)
	}
	for _, r := range raws {
		var el struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(r, &el); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, el.ID)
	}
	return ids, raws
}

// mergedSnapshot overlays each page's elements on the full export by id,
// in order: what a full export taken after the last page would hold.
func mergedSnapshot(t testing.TB) []byte {
	t.Helper()
	ids, raws := elementsOf(t, fixture(t, "ekp-full.json.gz"))
	at := make(map[string]int, len(ids))
	for i, id := range ids {
		at[id] = i
	}
	for _, name := range pageNames {
		pids, praws := elementsOf(t, fixture(t, name))
		for i, id := range pids {
			if j, ok := at[id]; ok {
				raws[j] = praws[i]
				continue
			}
			at[id] = len(raws)
			raws = append(raws, praws[i])
		}
	}
	b, err := json.Marshal(raws)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// oaDump writes every person, account, unit, post, group, post holder and
// group member, each named by OA id and with its references by OA id,
// without egret's ids and times: two directories with the same OA content
// give the same lines.
func oaDump(t testing.TB, s *directory.Store) []string {
	t.Helper()
	var (
		units    []directory.OrgUnit
		posts    []directory.Post
		people   []directory.Person
		accounts []directory.Account
		groups   []directory.Group
		links    []directory.PersonPost
		members  []directory.GroupMember
	)
	for _, dest := range []any{&units, &posts, &people, &accounts, &groups, &links, &members} {
		if err := s.DB().Find(dest).Error; err != nil {
			t.Fatal(err)
		}
	}
	name := map[string]string{}
	oa := func(kind string, id string, oaID *string, label string) {
		if oaID != nil {
			name[id] = kind + ":" + *oaID
		} else {
			name[id] = kind + ":(" + label + ")"
		}
	}
	for _, u := range units {
		oa("unit", u.ID, u.OAID, u.Name)
	}
	for _, p := range posts {
		oa("post", p.ID, p.OAID, p.Name)
	}
	for _, p := range people {
		oa("person", p.ID, p.OAID, p.Login)
	}
	for _, g := range groups {
		oa("group", g.ID, g.OAID, g.Name)
	}
	ref := func(id *string) string {
		if id == nil {
			return "-"
		}
		return name[*id]
	}
	var lines []string
	add := func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) }
	for _, u := range units {
		add("%s kind=%s name=%q parent=%s order=%d available=%t alter=%s",
			name[u.ID], u.Kind, u.Name, ref(u.ParentID), u.SortOrder, u.Available, u.OAAlterTime)
	}
	for _, p := range posts {
		add("%s name=%q unit=%s order=%d available=%t alter=%s",
			name[p.ID], p.Name, ref(p.UnitID), p.SortOrder, p.Available, p.OAAlterTime)
	}
	for _, p := range people {
		add("%s kind=%s login=%q name=%q nick=%q no=%s mobile=%s/%q phone=%q sex=%s alt=%s unit=%s order=%d status=%s alter=%s",
			name[p.ID], p.Kind, p.Login, p.DisplayName, p.Nickname, p.EmployeeNo, p.Mobile, p.MobileRaw,
			p.WorkPhone, p.Sex, p.AltEmail, ref(p.UnitID), p.SortOrder, p.Status, p.OAAlterTime)
	}
	for _, a := range accounts {
		add("account of %s address=%s status=%s", ref(a.PersonID), a.Address, a.Status)
	}
	for _, g := range groups {
		add("%s name=%q available=%t alter=%s", name[g.ID], g.Name, g.Available, g.OAAlterTime)
	}
	for _, l := range links {
		add("%s holds %s", name[l.PersonID], name[l.PostID])
	}
	for _, m := range members {
		add("%s has %s %s", name[m.GroupID], m.MemberKind, name[m.MemberID])
	}
	slices.Sort(lines)
	return lines
}

// sameLines fails t with the first lines that differ.
func sameLines(t testing.TB, got, want []string) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	wantSet := make(map[string]bool, len(want))
	for _, l := range want {
		wantSet[l] = true
	}
	gotSet := make(map[string]bool, len(got))
	for _, l := range got {
		gotSet[l] = true
	}
	shown := 0
	for _, l := range got {
		if !wantSet[l] && shown < 10 {
			t.Errorf("only in got:  %s", l)
			shown++
		}
	}
	for _, l := range want {
		if !gotSet[l] && shown < 20 {
			t.Errorf("only in want: %s", l)
			shown++
		}
	}
	t.Fatalf("the directories differ: %d lines against %d", len(got), len(want))
}

// changed reports whether a report says anything was written.
func changed(r *oasync.Report) bool {
	for _, c := range []oasync.Counts{r.Org, r.Dept, r.Post, r.Person, r.Group} {
		if c.Created+c.Updated+c.Disabled+c.Enabled != 0 {
			return true
		}
	}
	return r.Accounts != (oasync.AccountCounts{}) || r.PersonPosts != (oasync.LinkCounts{}) ||
		r.GroupMembers != (oasync.LinkCounts{})
}

func TestPagesOfChangesGiveTheDirectoryOfTheMergedSnapshot(t *testing.T) {
	full := fixture(t, "ekp-full.json.gz")
	merged := mergedSnapshot(t)
	for _, dialect := range dirtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := dirtest.Open(t, dialect)
			mustImport(t, s, full, false)
			var total oasync.Report
			for _, name := range pageNames {
				rep := mustChanges(t, s, fixture(t, name), false)
				if rep.Held || rep.Stale != 0 || rep.Source.Kind != oasync.KindChanges || rep.Source.TimeStamp == "" {
					t.Fatalf("%s: got %+v", name, rep)
				}
				if rep.Person.Absent != 0 {
					t.Errorf("%s: a page counted %d people absent", name, rep.Person.Absent)
				}
				total.Person.Created += rep.Person.Created
				total.Person.Disabled += rep.Person.Disabled
				total.Person.Enabled += rep.Person.Enabled
				total.Dept.Updated += rep.Dept.Updated
			}
			// The pages hire 57 people, let 35 go and take 12 back, and
			// rename departments 12 times (三中队 twice).
			if total.Person.Created != 57 || total.Person.Disabled != 35 || total.Person.Enabled != 12 {
				t.Errorf("people over the pages: got %+v", total.Person)
			}
			if total.Dept.Updated != 12 {
				t.Errorf("departments renamed over the pages: got %d, want 12", total.Dept.Updated)
			}

			want := dirtest.Open(t, dialect)
			mustImport(t, want, merged, false)
			sameLines(t, oaDump(t, s), oaDump(t, want))

			t.Run("replaying any page changes nothing", func(t *testing.T) {
				for _, name := range pageNames {
					before := fingerprint(t, s)
					rep := mustChanges(t, s, fixture(t, name), false)
					if changed(rep) {
						t.Errorf("%s replayed: got %+v", name, rep)
					}
					if after := fingerprint(t, s); after != before {
						t.Errorf("%s replayed: the database changed", name)
					}
				}
			})
		})
	}
}

func TestAStaleElementIsIgnoredAndReported(t *testing.T) {
	for _, dialect := range dirtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := dirtest.Open(t, dialect)
			mustImport(t, s, envelope(t, base()), false)

			// Li leaves at 10:00; a page from 09:30 that still has her
			// available, and renamed, arrives late.
			left := personEl("u-li", "李娜", "d-fly", "lina", "Lina@163.example", "13025707418")
			left["isAvailable"] = false
			left["alterTime"] = "2026-12-01 10:00:00.000"
			if rep := mustChanges(t, s, envelope(t, []obj{left}), false); rep.Person.Disabled != 1 {
				t.Fatalf("leaving: got %+v", rep.Person)
			}
			late := personEl("u-li", "李娜娜", "d-fly", "lina", "Lina@163.example", "13025707418")
			late["alterTime"] = "2026-12-01 09:30:00.000"
			hire := personEl("u-new", "新人", "d-ops", "xinren", nil, "")
			hire["alterTime"] = "2026-12-01 09:31:00.000"

			before := count(t, s, &directory.Change{}, "")
			rep := mustChanges(t, s, envelope(t, []obj{late, hire}), false)
			if rep.Stale != 1 || rep.Elements != 2 || rep.Person.Created != 1 || rep.Person.Enabled != 0 || rep.Person.Updated != 0 {
				t.Errorf("got stale %d, elements %d, people %+v", rep.Stale, rep.Elements, rep.Person)
			}
			if !slices.ContainsFunc(rep.Warnings, func(w oasync.Warning) bool {
				return w.ID == "u-li" && strings.Contains(w.Message, "stale") &&
					strings.Contains(w.Message, "2026-12-01 10:00:00.000")
			}) {
				t.Errorf("no warning names the stale element: %+v", rep.Warnings)
			}
			u := personByOA(t, s, "u-li")
			if u.Status != directory.PersonLeft || u.DisplayName != "李娜" || u.Account.Status != directory.AccountDisabled {
				t.Errorf("the stale element rolled back: %q %q %q", u.Status, u.DisplayName, u.Account.Status)
			}
			// The new hire's person and account rows.
			if n := count(t, s, &directory.Change{}, ""); n != before+2 {
				t.Errorf("change log grew by %d, want 2", n-before)
			}

			// The same alterTime again applies, and changes nothing.
			if rep := mustChanges(t, s, envelope(t, []obj{left}), false); rep.Stale != 0 || changed(rep) {
				t.Errorf("equal alterTime: got stale %d, %+v", rep.Stale, rep)
			}
		})
	}
}

func TestAPageMovesAndRenamesAgainstTheDirectory(t *testing.T) {
	for _, dialect := range dirtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := dirtest.Open(t, dialect)
			els := base()
			els = append(els, deptEl("d-sub", "签派室", "d-ops"))
			mustImport(t, s, envelope(t, els), false)

			at := func(el obj, ts string) obj { el["alterTime"] = ts; return el }
			t.Run("a move whose new parent is only in the directory", func(t *testing.T) {
				rep := mustChanges(t, s, envelope(t, []obj{
					at(deptEl("d-sub", "签派中心", "d-fly"), "2026-12-01 08:00:00.000"),
					at(personEl("u-zhao", "赵敏", "d-sub", "zhaomin", nil, "13900001111"), "2026-12-01 08:00:01.000"),
				}), false)
				if rep.Dept.Updated != 1 || rep.Person.Updated != 1 || len(rep.Warnings) != 0 {
					t.Fatalf("got %+v", rep)
				}
				if d := unitByOA(t, s, "d-sub"); d.Name != "签派中心" || *d.ParentID != unitByOA(t, s, "d-fly").ID {
					t.Errorf("dept: %q under %v", d.Name, d.ParentID)
				}
				if u := personByOA(t, s, "u-zhao"); *u.UnitID != unitByOA(t, s, "d-sub").ID || u.Mobile != "13900001111" {
					t.Errorf("person: unit %v, mobile %q", u.UnitID, u.Mobile)
				}
				var c directory.Change
				s.DB().Where("entity = ? AND op = ?", directory.EntityUnit, directory.OpUpdate).Order("seq DESC").Take(&c)
				if c.Before == nil || !strings.Contains(*c.Before, "签派室") || !strings.Contains(c.Data, "签派中心") {
					t.Errorf("the change log lacks the unit before and after: %+v", c)
				}
				if !strings.Contains(c.Actor, "oa:changes@"+rep.Source.Digest[:16]) {
					t.Errorf("actor %q does not name the page %s", c.Actor, rep.Source.Digest)
				}
			})

			t.Run("a move that makes a cycle with the directory is refused", func(t *testing.T) {
				before := fingerprint(t, s)
				// d-fly under d-sub, which is under d-fly.
				_, err := importer(s).ImportChanges(context.Background(), bytes.NewReader(envelope(t, []obj{
					at(deptEl("d-fly", "飞行部", "d-sub"), "2026-12-01 09:00:00.000"),
					at(personEl("u-hire", "新人", "d-fly", "xinren", nil, ""), "2026-12-01 09:00:01.000"),
				})), oasync.Options{})
				var inv *oasync.InvalidError
				if !errors.As(err, &inv) || !strings.Contains(inv.Error(), "cycle") {
					t.Fatalf("got %v, want a refusal naming the cycle", err)
				}
				if after := fingerprint(t, s); after != before {
					t.Errorf("a refused page wrote to the database")
				}
			})

			t.Run("a rehire under the same id", func(t *testing.T) {
				first := personByOA(t, s, "u-li")
				gone := at(personEl("u-li", "李娜", "d-fly", "lina", "Lina@163.example", "13025707418"), "2026-12-02 08:00:00.000")
				gone["isAvailable"] = false
				back := at(personEl("u-li", "李娜", "d-ops", "lina", "Lina@163.example", "13025707418"), "2026-12-03 08:00:00.000")
				mustChanges(t, s, envelope(t, []obj{gone}), false)
				rep := mustChanges(t, s, envelope(t, []obj{back}), false)
				if rep.Person.Enabled != 1 || rep.Accounts.Enabled != 1 {
					t.Errorf("got %+v, accounts %+v", rep.Person, rep.Accounts)
				}
				u := personByOA(t, s, "u-li")
				if u.ID != first.ID || u.Account.ID != first.Account.ID || u.Account.Status != directory.AccountEnabled ||
					*u.UnitID != unitByOA(t, s, "d-ops").ID {
					t.Errorf("got %+v", u)
				}
			})
		})
	}
}
