package oasync_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/directory/dirtest"
	"github.com/egretair/egret/oasync"
)

func TestFullExportImportsAndReimportsAsNoChange(t *testing.T) {
	input := fixture(t, "ekp-full.json.gz")
	for _, dialect := range dirtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := dirtest.Open(t, dialect)
			rep := mustImport(t, s, input, false)

			want := oasync.Counts{Created: 11000}
			if rep.Person != want {
				t.Errorf("people: got %+v, want %+v", rep.Person, want)
			}
			if rep.Org.Created != 1 || rep.Dept.Created != 540 || rep.Post.Created != 300 || rep.Group.Created != 6 {
				t.Errorf("org/dept/post/group created: got %d/%d/%d/%d, want 1/540/300/6",
					rep.Org.Created, rep.Dept.Created, rep.Post.Created, rep.Group.Created)
			}
			if rep.Accounts != (oasync.AccountCounts{Created: 11000}) {
				t.Errorf("accounts: got %+v", rep.Accounts)
			}
			if rep.PersonPosts.Added != 1669 || rep.GroupMembers.Added != 269 {
				t.Errorf("links: got %+v and %+v, want 1669 post holders and 269 group members",
					rep.PersonPosts, rep.GroupMembers)
			}
			if len(rep.Warnings) != 0 {
				t.Errorf("the full export gave %d warnings, first %+v", len(rep.Warnings), rep.Warnings[0])
			}

			enabled := count(t, s, &directory.Account{}, "status = ?", directory.AccountEnabled)
			if enabled != 10509 {
				t.Errorf("enabled accounts: got %d, want 10509 (the available people)", enabled)
			}
			if n := count(t, s, &directory.Person{}, "status = ?", directory.PersonLeft); n != 491 {
				t.Errorf("people who left: got %d, want 491", n)
			}
			if n := count(t, s, &directory.OrgUnit{}, "kind = ?", directory.UnitHolding); n != 0 {
				t.Errorf("a holding unit was made for a complete export")
			}

			t.Run("a person with a foreign email and a spaced mobile number", func(t *testing.T) {
				u := personByOA(t, s, "dacab099e5ae4e934b387943a02e2475")
				if u.Login != "gaohang" || u.DisplayName != "高航" || u.EmployeeNo != "E012816" {
					t.Errorf("got login %q, name %q, no %q", u.Login, u.DisplayName, u.EmployeeNo)
				}
				if u.Account == nil || u.Account.Address != "gaohang@egretair.example" ||
					u.Account.Status != directory.AccountEnabled {
					t.Errorf("account: got %+v, want gaohang@egretair.example, enabled", u.Account)
				}
				if u.AltEmail != "gaohang@163.example" {
					t.Errorf("alt_email: got %q, want the OA email on the other domain", u.AltEmail)
				}
				if u.Mobile != "15591724084" || u.MobileRaw != "+86 155 9172 4084" {
					t.Errorf("mobile: got %q (raw %q)", u.Mobile, u.MobileRaw)
				}
				if len(u.Posts) != 1 || u.Posts[0].Name != "培训科经理" {
					t.Errorf("posts: got %+v, want 培训科经理", u.Posts)
				}
				if unit := unitByOA(t, s, "4b354e934b3e90b7d7435571c79dbc12"); u.UnitID == nil || *u.UnitID != unit.ID {
					t.Errorf("unit: got %v, want 培训科 %s", u.UnitID, unit.ID)
				}
				if u.Status != directory.PersonActive || u.SortOrder != 209 || u.OAAlterTime != "2026-11-30 08:27:37.155" {
					t.Errorf("status %q, order %d, alter time %q", u.Status, u.SortOrder, u.OAAlterTime)
				}
			})

			t.Run("a person who has left, with a capitalised login and no email", func(t *testing.T) {
				u := personByOA(t, s, "8b76d672b694aa43d301377917a67dc2")
				if u.Login != "Hanhuijie" || u.LoginLower != "hanhuijie" {
					t.Errorf("login: got %q / %q", u.Login, u.LoginLower)
				}
				if u.Status != directory.PersonLeft || u.Account == nil ||
					u.Account.Status != directory.AccountDisabled || u.Account.Address != "hanhuijie@egretair.example" {
					t.Errorf("got status %q, account %+v", u.Status, u.Account)
				}
				if u.Mobile != "15767258096" || u.AltEmail != "" {
					t.Errorf("mobile %q, alt_email %q", u.Mobile, u.AltEmail)
				}
			})

			t.Run("a person whose OA email is on the mail domain", func(t *testing.T) {
				u := personByOA(t, s, "155db04566b72175aaf3057be8ac9015")
				if u.Account == nil || u.Account.Address != "xujingxue@egretair.example" || u.AltEmail != "" {
					t.Errorf("got account %+v, alt_email %q", u.Account, u.AltEmail)
				}
			})

			t.Run("groups hold their members", func(t *testing.T) {
				var g directory.Group
				if err := s.DB().Where("oa_id = ?", "8a508b30e513a9c42f1321c836daaef7").Take(&g).Error; err != nil {
					t.Fatal(err)
				}
				if g.Name != "安全委员会" {
					t.Errorf("group name %q", g.Name)
				}
				n := count(t, s, &directory.GroupMember{}, "group_id = ? AND member_kind = ?", g.ID, directory.MemberPerson)
				if n != 56 {
					t.Errorf("members: got %d people, want 56", n)
				}
				first := personByOA(t, s, "84ef91b6e150b8577333847d65475557")
				if count(t, s, &directory.GroupMember{}, "group_id = ? AND member_id = ?", g.ID, first.ID) != 1 {
					t.Errorf("the first listed member is not in the group")
				}
			})

			t.Run("the change log has a row for every record made", func(t *testing.T) {
				// 847 units and posts, 11,000 people and as many accounts,
				// 6 groups.
				if n := count(t, s, &directory.Change{}, ""); n != 1+540+300+11000+11000+6 {
					t.Errorf("change log rows: got %d, want %d", n, 1+540+300+11000+11000+6)
				}
			})

			before := fingerprint(t, s)
			again := mustImport(t, s, input, false)
			for typ, c := range map[string]oasync.Counts{
				"org": again.Org, "dept": again.Dept, "post": again.Post, "person": again.Person, "group": again.Group,
			} {
				if c.Created+c.Updated+c.Disabled+c.Enabled+c.Absent != 0 {
					t.Errorf("second import, %s: got %+v, want all unchanged", typ, c)
				}
			}
			if again.Person.Unchanged != 11000 || again.Accounts != (oasync.AccountCounts{}) ||
				again.PersonPosts != (oasync.LinkCounts{}) || again.GroupMembers != (oasync.LinkCounts{}) {
				t.Errorf("second import: got %+v", again)
			}
			if after := fingerprint(t, s); after != before {
				t.Errorf("second import wrote to the database:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

func TestEveryInputFormGivesTheSameDirectory(t *testing.T) {
	small := fixture(t, "ekp-small.json")
	var env struct {
		Message string `json:"message"`
	}
	if err := json.Unmarshal(small, &env); err != nil {
		t.Fatal(err)
	}
	var arr []json.RawMessage
	if err := json.Unmarshal([]byte(env.Message), &arr); err != nil {
		t.Fatal(err)
	}
	inner, _ := json.Marshal(map[string]any{"returnState": 2, "message": arr, "count": len(arr)})

	forms := []struct {
		name  string
		input []byte
	}{
		{"the envelope with the array in a string", small},
		{"the bare array", []byte(env.Message)},
		{"an envelope whose message is an array", inner},
		{"the envelope gzipped", gzipped(t, small)},
		{"the bare array gzipped, after a byte-order mark", gzipped(t, append([]byte("\ufeff"), env.Message...))},
	}
	for _, dialect := range dirtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			var wantReport oasync.Report
			var wantDump string
			for i, f := range forms {
				s := dirtest.Open(t, dialect)
				rep := mustImport(t, s, f.input, false)
				d := dump(t, s)
				if i == 0 {
					wantReport, wantDump = counts(rep), d
					if rep.Elements != 73 || rep.Person.Created != 60 || rep.Accounts.Created != 60 {
						t.Fatalf("%s: got %+v", f.name, rep)
					}
					continue
				}
				if got := counts(rep); !reflect.DeepEqual(got, wantReport) {
					t.Errorf("%s: report %+v, want %+v", f.name, got, wantReport)
				}
				if d != wantDump {
					t.Errorf("%s: directory differs from the envelope's", f.name)
				}
			}
		})
	}
}

// dump writes the directory's content without its ids and times.
func dump(t testing.TB, s *directory.Store) string {
	t.Helper()
	var rows []struct {
		OAID, Login, DisplayName, Mobile, MobileRaw, AltEmail, Status, Unit, Address, AccountStatus string
	}
	err := s.DB().Table("people").
		Select("people.oa_id, people.login, people.display_name, people.mobile, people.mobile_raw, " +
			"people.alt_email, people.status, org_units.oa_id AS unit, accounts.address, " +
			"accounts.status AS account_status").
		Joins("JOIN org_units ON org_units.id = people.unit_id").
		Joins("JOIN accounts ON accounts.person_id = people.id").
		Order("people.oa_id").Scan(&rows).Error
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(rows)
	return string(b)
}

// problemWant says which element a refusal must name.
type problemWant struct {
	index int
	id    string
	field string
	// says is a piece of the problem's message.
	says string
}

func TestInvalidInputIsRefusedWholeAndNamesTheElement(t *testing.T) {
	withName := func(name string) []obj {
		els := base()
		find(els, "u-li")["name"] = name
		return els
	}
	withEl := func(el obj) []obj { return append(base(), el) }
	mutate := func(id, key string, v any) []obj {
		els := base()
		find(els, id)[key] = v
		return els
	}

	cases := []struct {
		name      string
		input     func(t testing.TB) []byte
		want      problemWant
		malformed bool
	}{
		{
			name:  "an element without an id",
			input: func(t testing.TB) []byte { return envelope(t, mutate("u-zhao", "id", "")) },
			want:  problemWant{index: 6, field: "id", says: "no id"},
		},
		{
			name: "an element of a type EKP does not have",
			input: func(t testing.TB) []byte {
				return envelope(t, withEl(obj{"id": "r-1", "type": "role", "name": "值班员"}))
			},
			want: problemWant{index: 8, id: "r-1", field: "type", says: `unknown type "role"`},
		},
		{
			name: "two departments that are each other's parent",
			input: func(t testing.TB) []byte {
				els := base()
				find(els, "d-ops")["parent"] = "d-fly"
				find(els, "d-fly")["parent"] = "d-ops"
				return envelope(t, els)
			},
			want: problemWant{index: 1, id: "d-ops", field: "parent", says: "parent cycle"},
		},
		{
			name:  "a department that is its own parent",
			input: func(t testing.TB) []byte { return bare(t, mutate("d-fly", "parent", "d-fly")) },
			want:  problemWant{index: 2, id: "d-fly", field: "parent", says: "parent cycle"},
		},
		{
			name: "bytes that are not UTF-8 inside the envelope's message string",
			input: func(t testing.TB) []byte {
				return bytes.Replace(envelope(t, withName("李MARK娜")), []byte("MARK"), []byte{0xff, 0xfe}, 1)
			},
			want: problemWant{index: 5, id: "u-li", field: "name", says: "not valid UTF-8"},
		},
		{
			name: "bytes that are not UTF-8 in a bare array",
			input: func(t testing.TB) []byte {
				return bytes.Replace(bare(t, withName("李MARK娜")), []byte("MARK"), []byte{0xc3}, 1)
			},
			want: problemWant{index: 5, id: "u-li", field: "name", says: "not valid UTF-8"},
		},
		{
			name: "a lone surrogate escape inside the envelope's message string",
			input: func(t testing.TB) []byte {
				return bytes.Replace(envelope(t, withName("李MARK娜")), []byte("MARK"), []byte(`\ud800`), 1)
			},
			want: problemWant{index: 5, id: "u-li", field: "name", says: "not valid"},
		},
		{
			name: "a lone surrogate escape in a bare array",
			input: func(t testing.TB) []byte {
				return bytes.Replace(bare(t, withName("李MARK娜")), []byte("MARK"), []byte(`\udc01`), 1)
			},
			want: problemWant{index: 5, id: "u-li", field: "name", says: "lone surrogate"},
		},
		{
			name: "two elements with one id",
			input: func(t testing.TB) []byte {
				return envelope(t, withEl(personEl("u-li", "李娜", "d-fly", "lina2", nil, "")))
			},
			want: problemWant{index: 8, id: "u-li", field: "id", says: "duplicate id: element 5"},
		},
		{
			name:  "a person without a loginName",
			input: func(t testing.TB) []byte { return envelope(t, mutate("u-zhao", "loginName", "")) },
			want:  problemWant{index: 6, id: "u-zhao", field: "loginName", says: "must have a loginName"},
		},
		{
			name: "two people whose logins differ only in case",
			input: func(t testing.TB) []byte {
				return envelope(t, withEl(personEl("u-wang2", "王伟", "d-fly", "wangWEI", nil, "")))
			},
			want: problemWant{index: 8, id: "u-wang2", field: "loginName", says: "collides with element 4"},
		},
		{
			name: "two people who would get the same mail address",
			input: func(t testing.TB) []byte {
				return envelope(t, withEl(personEl("u-na", "李娜", "d-fly", "lina.li", "LINA@EgretAir.Example", "")))
			},
			want: problemWant{index: 8, id: "u-na", field: "email", says: "lina@egretair.example, which element 5"},
		},
		{
			name: "a login that cannot be an address",
			input: func(t testing.TB) []byte {
				return envelope(t, withEl(personEl("u-sp", "孙鹏", "d-fly", "sun peng", nil, "")))
			},
			want: problemWant{index: 8, id: "u-sp", field: "loginName", says: "not a mail address"},
		},
		{
			name: "a person whose parent is a person",
			input: func(t testing.TB) []byte {
				return envelope(t, mutate("u-zhao", "parent", "u-li"))
			},
			want: problemWant{index: 6, id: "u-zhao", field: "parent", says: "is a person"},
		},
		{
			name: "a field of the wrong JSON type",
			input: func(t testing.TB) []byte {
				return envelope(t, mutate("u-zhao", "posts", "p-duty"))
			},
			want: problemWant{index: 6, id: "u-zhao", field: "posts", says: "cannot be read"},
		},
		{
			name:      "malformed JSON",
			input:     func(t testing.TB) []byte { return []byte(`[{"id": "org1", "type": "org",}]`) },
			want:      problemWant{index: -1, says: "malformed JSON at byte 30 (from 0) of the input, in element 0"},
			malformed: true,
		},
		{
			name: "malformed JSON inside the envelope's message string",
			input: func(t testing.TB) []byte {
				return []byte(`{"returnState": 2, "message": "[{\"id\": \"a\"}, {\"id\" \"b\"}]", "count": 2}`)
			},
			want:      problemWant{index: -1, says: "byte 20 (from 0) of the envelope's message string (counted in its unescaped text), in element 1"},
			malformed: true,
		},
		{
			name:      "a gzip stream cut short",
			input:     func(t testing.TB) []byte { z := gzipped(t, envelope(t, base())); return z[:len(z)/2] },
			want:      problemWant{index: -1, says: "gzip stream"},
			malformed: true,
		},
		{
			name: "an envelope in which EKP reports failure",
			input: func(t testing.TB) []byte {
				return []byte(`{"returnState": 1, "message": "查询失败：权限不足", "count": 0}`)
			},
			want: problemWant{index: -1, field: "returnState", says: "returnState 1, not 2"},
		},
		{
			name: "an envelope whose count disagrees with its message",
			input: func(t testing.TB) []byte {
				b := envelope(t, base())
				return bytes.Replace(b, []byte(`"count":8`), []byte(`"count":9`), 1)
			},
			want: problemWant{index: -1, field: "count", says: "says 9 elements but message holds 8"},
		},
	}

	for _, dialect := range dirtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := dirtest.Open(t, dialect)
			mustImport(t, s, envelope(t, base()), false)
			before := fingerprint(t, s)

			for _, c := range cases {
				t.Run(c.name+" is refused", func(t *testing.T) {
					for _, dry := range []bool{false, true} {
						_, err := importer(s).ImportSnapshot(context.Background(),
							bytes.NewReader(c.input(t)), oasync.Options{DryRun: dry})
						var inv *oasync.InvalidError
						if !errors.As(err, &inv) {
							t.Fatalf("got %v, want an *InvalidError", err)
						}
						if !hasProblem(inv.Problems, c.want) {
							t.Errorf("no problem like %+v in:\n%s", c.want, inv)
						}
						if c.want.id != "" && !strings.Contains(err.Error(), c.want.id) {
							t.Errorf("the error does not name %s: %v", c.want.id, err)
						}
						if got := errors.Is(err, oasync.ErrMalformed); got != c.malformed {
							t.Errorf("errors.Is(err, ErrMalformed) = %v, want %v", got, c.malformed)
						}
						if c.malformed && inv.Problems[0].Offset == nil && !strings.Contains(c.want.says, "gzip") {
							t.Errorf("a syntax error without its offset: %+v", inv.Problems[0])
						}
					}
					if after := fingerprint(t, s); after != before {
						t.Errorf("a refused snapshot changed the database")
					}
				})
			}
		})
	}
}

func hasProblem(ps []oasync.Problem, w problemWant) bool {
	for _, p := range ps {
		if p.Index == w.index && (w.id == "" || p.ID == w.id) && p.Field == w.field &&
			strings.Contains(p.Message, w.says) {
			return true
		}
	}
	return false
}

func TestAllProblemsAreListedTogether(t *testing.T) {
	els := base()
	find(els, "u-zhao")["loginName"] = ""
	find(els, "d-ops")["type"] = "division"
	els = append(els, obj{"type": "person", "name": "无名"})
	s := dirtest.Open(t, "sqlite")
	_, err := importer(s).ImportSnapshot(context.Background(), bytes.NewReader(envelope(t, els)), oasync.Options{})
	var inv *oasync.InvalidError
	if !errors.As(err, &inv) || len(inv.Problems) != 3 {
		t.Fatalf("got %v, want three problems", err)
	}
	if n := count(t, s, &directory.Person{}, ""); n != 0 {
		t.Errorf("a refused snapshot wrote %d people", n)
	}
}

func TestUnknownParentsGoToTheHoldingUnit(t *testing.T) {
	for _, dialect := range dirtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := dirtest.Open(t, dialect)
			els := base()
			find(els, "u-zhao")["parent"] = "d-gone"
			find(els, "p-duty")["parent"] = "d-gone"
			els = append(els, deptEl("d-lost", "失联部门", "d-gone"))
			rep := mustImport(t, s, envelope(t, els), false)

			var holding directory.OrgUnit
			if err := s.DB().Where("kind = ?", directory.UnitHolding).Take(&holding).Error; err != nil {
				t.Fatalf("no holding unit: %v", err)
			}
			org := unitByOA(t, s, "org1")
			if holding.ParentID == nil || *holding.ParentID != org.ID {
				t.Errorf("the holding unit is not under the org root: %v", holding.ParentID)
			}
			if u := personByOA(t, s, "u-zhao"); u.UnitID == nil || *u.UnitID != holding.ID {
				t.Errorf("the person is not in the holding unit")
			}
			if d := unitByOA(t, s, "d-lost"); d.ParentID == nil || *d.ParentID != holding.ID {
				t.Errorf("the dept is not in the holding unit")
			}
			var post directory.Post
			s.DB().Where("oa_id = ?", "p-duty").Take(&post)
			if post.UnitID == nil || *post.UnitID != holding.ID {
				t.Errorf("the post is not in the holding unit")
			}
			for _, id := range []string{"u-zhao", "p-duty", "d-lost"} {
				if !slices.ContainsFunc(rep.Warnings, func(w oasync.Warning) bool {
					return w.ID == id && strings.Contains(w.Message, "d-gone") && strings.Contains(w.Message, "holding unit")
				}) {
					t.Errorf("no warning names %s: %+v", id, rep.Warnings)
				}
			}

			// The parent turns up: the person moves out, and the holding
			// unit is reused, not made again.
			els = append(els, deptEl("d-gone", "找回的部门", "org1"))
			rep = mustImport(t, s, envelope(t, els), false)
			if u := personByOA(t, s, "u-zhao"); *u.UnitID != unitByOA(t, s, "d-gone").ID {
				t.Errorf("the person did not move to the parent that turned up")
			}
			if rep.Person.Updated != 1 || rep.Dept.Updated != 1 || rep.Post.Updated != 1 || rep.Dept.Created != 1 {
				t.Errorf("got %+v", rep)
			}
			if n := count(t, s, &directory.OrgUnit{}, "kind = ?", directory.UnitHolding); n != 1 {
				t.Errorf("%d holding units", n)
			}
		})
	}
}

func TestSiblingsWithOneNameAreBothKept(t *testing.T) {
	for _, dialect := range dirtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := dirtest.Open(t, dialect)
			els := append(base(), deptEl("d-ops-2", "运行控制部", "org1"))
			find(els, "u-zhao")["parent"] = "d-ops-2"
			mustImport(t, s, envelope(t, els), false)

			org := unitByOA(t, s, "org1")
			n := count(t, s, &directory.OrgUnit{}, "parent_id = ? AND name = ?", org.ID, "运行控制部")
			if n != 2 {
				t.Errorf("got %d departments named 运行控制部, want 2", n)
			}
			if u := personByOA(t, s, "u-zhao"); *u.UnitID != unitByOA(t, s, "d-ops-2").ID {
				t.Errorf("the person is in the wrong one of the two")
			}
		})
	}
}

func TestAPersonLeavesAndReturnsUnderTheSameIDs(t *testing.T) {
	for _, dialect := range dirtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := dirtest.Open(t, dialect)
			els := base()
			mustImport(t, s, envelope(t, els), false)
			first := personByOA(t, s, "u-li")

			find(els, "u-li")["isAvailable"] = false
			find(els, "u-li")["alterTime"] = "2026-12-01 09:00:00.5"
			rep := mustImport(t, s, envelope(t, els), false)
			if rep.Person.Disabled != 1 || rep.Accounts.Disabled != 1 || rep.Person.Unchanged != 2 {
				t.Errorf("leaving: got %+v, accounts %+v", rep.Person, rep.Accounts)
			}
			gone := personByOA(t, s, "u-li")
			if gone.Status != directory.PersonLeft || gone.Account.Status != directory.AccountDisabled {
				t.Errorf("got status %q, account %q", gone.Status, gone.Account.Status)
			}
			if gone.OAAlterTime != "2026-12-01 09:00:00.500" {
				t.Errorf("alter time not normalised: %q", gone.OAAlterTime)
			}

			find(els, "u-li")["isAvailable"] = true
			rep = mustImport(t, s, envelope(t, els), false)
			if rep.Person.Enabled != 1 || rep.Accounts.Enabled != 1 {
				t.Errorf("returning: got %+v, accounts %+v", rep.Person, rep.Accounts)
			}
			back := personByOA(t, s, "u-li")
			if back.ID != first.ID || back.Account.ID != first.Account.ID || back.Account.Address != first.Account.Address {
				t.Errorf("ids changed: %s/%s, was %s/%s", back.ID, back.Account.ID, first.ID, first.Account.ID)
			}
			if back.Status != directory.PersonActive || back.Account.Status != directory.AccountEnabled {
				t.Errorf("got status %q, account %q", back.Status, back.Account.Status)
			}

			var ops []string
			s.DB().Model(&directory.Change{}).Where("entity_id IN ?", []string{first.ID, first.Account.ID}).
				Order("seq").Pluck("op", &ops)
			want := []string{"create", "create", "disable", "disable", "enable", "enable"}
			if !slices.Equal(ops, want) {
				t.Errorf("change log ops: got %v, want %v", ops, want)
			}
		})
	}
}

func TestADryRunWritesNothingAndCountsLikeTheRealRun(t *testing.T) {
	for _, dialect := range dirtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := dirtest.Open(t, dialect)
			steps := [][]obj{base(), base()}
			find(steps[1], "u-zhao")["isAvailable"] = false
			find(steps[1], "d-fly")["name"] = "飞行技术部"
			find(steps[1], "d-ops")["isAvailable"] = false
			find(steps[1], "p-duty")["persons"] = []string{"u-wang", "u-li"}
			find(steps[1], "g-safety")["members"] = []string{"u-wang", "nobody"}
			steps[1] = append(steps[1], personEl("u-new", "新人", "d-nowhere", "xinren", nil, "86 139-0000-1111"))

			for i, els := range steps {
				input := envelope(t, els)
				before := fingerprint(t, s)
				dry := mustImport(t, s, input, true)
				if !dry.DryRun {
					t.Errorf("step %d: dry_run not set in the report", i)
				}
				if after := fingerprint(t, s); after != before {
					t.Fatalf("step %d: the dry run wrote to the database", i)
				}
				real := mustImport(t, s, input, false)
				if !reflect.DeepEqual(counts(dry), counts(real)) || len(dry.Warnings) != len(real.Warnings) {
					t.Errorf("step %d: dry run %+v\nreal run %+v", i, counts(dry), counts(real))
				}
			}

			// What the second step did, checked once.
			if d := unitByOA(t, s, "d-ops"); d.Available {
				t.Errorf("a dept the OA made unavailable is still available")
			}
			if u := personByOA(t, s, "u-new"); u.Mobile != "13900001111" || u.MobileRaw != "86 139-0000-1111" {
				t.Errorf("mobile: got %q from %q", u.Mobile, u.MobileRaw)
			}
			if u := personByOA(t, s, "u-li"); len(u.Posts) != 1 || u.Posts[0].Name != "值班经理" {
				t.Errorf("the post's new holder does not hold it: %+v", u.Posts)
			}
			var g directory.Group
			s.DB().Where("oa_id = ?", "g-safety").Take(&g)
			if n := count(t, s, &directory.GroupMember{}, "group_id = ?", g.ID); n != 1 {
				t.Errorf("group members: got %d, want 1", n)
			}
		})
	}
}

func TestLinksAreReconciledToTheSnapshot(t *testing.T) {
	for _, dialect := range dirtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := dirtest.Open(t, dialect)
			els := base()
			els = append(els, postEl("p-cap", "机长", "d-fly", "u-li"))
			find(els, "u-zhao")["posts"] = []string{"p-cap"}
			rep := mustImport(t, s, envelope(t, els), false)
			if rep.PersonPosts.Added != 3 {
				t.Errorf("links added: got %d, want 3 (the union of posts and persons)", rep.PersonPosts.Added)
			}

			// Wang leaves the duty post on both sides. The captain's post
			// stops listing Li, and her own list never named it, so she
			// loses it; Zhao's own list still names it, so he keeps it.
			find(els, "u-wang")["posts"] = []string{}
			find(els, "p-duty")["persons"] = []string{}
			find(els, "p-cap")["persons"] = []string{}
			find(els, "g-safety")["members"] = []string{"u-wang", "p-cap"}
			rep = mustImport(t, s, envelope(t, els), false)
			if rep.PersonPosts != (oasync.LinkCounts{Removed: 2}) {
				t.Errorf("links: got %+v, want 2 removed", rep.PersonPosts)
			}
			if rep.GroupMembers != (oasync.LinkCounts{Added: 1, Removed: 2}) {
				t.Errorf("group members: got %+v", rep.GroupMembers)
			}
			if rep.Person.Updated != 2 || rep.Group.Updated != 1 {
				t.Errorf("people updated %d, groups updated %d; want 2 and 1", rep.Person.Updated, rep.Group.Updated)
			}
			if u := personByOA(t, s, "u-zhao"); len(u.Posts) != 1 || u.Posts[0].Name != "机长" {
				t.Errorf("Zhao's own post went: %+v", u.Posts)
			}
			var g directory.Group
			s.DB().Where("oa_id = ?", "g-safety").Take(&g)
			if n := count(t, s, &directory.GroupMember{}, "group_id = ? AND member_kind = ?", g.ID, directory.MemberPost); n != 1 {
				t.Errorf("the post did not join the group as a post")
			}
		})
	}
}

func TestAnAddressOnceMadeIsKept(t *testing.T) {
	for _, dialect := range dirtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			s := dirtest.Open(t, dialect)
			els := base()
			mustImport(t, s, envelope(t, els), false)

			find(els, "u-wang")["email"] = "wei.wang@egretair.example"
			rep := mustImport(t, s, envelope(t, els), false)
			if u := personByOA(t, s, "u-wang"); u.Account.Address != "wangwei@egretair.example" {
				t.Errorf("the import changed an address to %s", u.Account.Address)
			}
			if !slices.ContainsFunc(rep.Warnings, func(w oasync.Warning) bool {
				return w.ID == "u-wang" && strings.Contains(w.Message, "wei.wang@egretair.example")
			}) {
				t.Errorf("no warning about the address the OA now gives: %+v", rep.Warnings)
			}
			if rep.Accounts != (oasync.AccountCounts{}) || rep.Person.Updated != 0 {
				t.Errorf("got %+v, accounts %+v", rep.Person, rep.Accounts)
			}
		})
	}
}

func TestReportJSONFieldNames(t *testing.T) {
	s := dirtest.Open(t, "sqlite")
	rep := mustImport(t, s, envelope(t, base()), true)
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	for _, k := range []string{"dry_run", "elements", "org", "dept", "post", "person", "group",
		"accounts", "person_posts", "group_members", "warnings", "duration_ms"} {
		if _, ok := m[k]; !ok {
			t.Errorf("the report has no %q: %s", k, b)
		}
	}
	person := m["person"].(map[string]any)
	for _, k := range []string{"created", "updated", "disabled", "enabled", "unchanged", "absent"} {
		if _, ok := person[k]; !ok {
			t.Errorf("person counts have no %q: %s", k, b)
		}
	}
}
