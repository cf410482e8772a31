package api_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/egretair/egret/directory"
)

// tablesChecksum answers a digest of every row of the directory's
// tables, to show that a refused call changed nothing.
func tablesChecksum(t *testing.T, s *directory.Store) string {
	t.Helper()
	h := sha256.New()
	for _, table := range []string{
		"org_units", "posts", "people", "person_posts", "accounts", "aliases",
		"org_groups", "group_members", "change_log", "api_keys",
	} {
		var rows []map[string]any
		if err := s.DB().Table(table).Find(&rows).Error; err != nil {
			t.Fatalf("checksum: %s: %v", table, err)
		}
		lines := make([]string, len(rows))
		for i, r := range rows {
			b, _ := json.Marshal(r)
			lines[i] = string(b)
		}
		slices.Sort(lines)
		fmt.Fprintf(h, "%s %d\n%s\n", table, len(rows), strings.Join(lines, "\n"))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// elems makes a bare EKP array from elements.
func elems(es ...string) string { return "[" + strings.Join(es, ",") + "]" }

func dept(id, parent, name string) string {
	return fmt.Sprintf(`{"id":%q,"type":"dept","name":%q,"parent":%q,"isAvailable":true}`, id, name, parent)
}

func person(id, parent, login string) string {
	return fmt.Sprintf(`{"id":%q,"type":"person","name":"测试","parent":%q,"loginName":%q,"isAvailable":true}`, id, parent, login)
}

func TestBadInputIsRefusedAndChangesNothing(t *testing.T) {
	env := newLifecycleEnv(t, "sqlite")
	importSmall(t, env.ts)
	const root = "6513270e269e0d37f2a74de452e6b438"
	const oaDept = "9531985d5d9dc9f81818e811892f902b"

	// A small tree and two users of the lifecycle's own.
	var a, b, c directory.UnitView
	env.do(t, "POST", "/api/v1/orgunits", map[string]any{"name": "A", "parent_id": root, "oa_id": "oa-a"}, 201, &a)
	env.do(t, "POST", "/api/v1/orgunits", map[string]any{"name": "B", "parent_id": a.ID}, 201, &b)
	env.do(t, "POST", "/api/v1/orgunits", map[string]any{"name": "C", "parent_id": b.ID}, 201, &c)
	var u, v directory.User
	env.do(t, "POST", "/api/v1/users", map[string]any{"login": "WangWei", "display_name": "王伟", "oa_id": "oa-ww", "unit_id": a.ID}, 201, &u)
	env.do(t, "POST", "/api/v1/users", map[string]any{"kind": "shared", "login": "ops", "display_name": "值班"}, 201, &v)

	big := strings.Repeat("航", 10<<20/3)
	cases := []struct {
		name, method, path, body string
		status                   int
		// names is what the answer must name: the field or element.
		names string
	}{
		// The OA snapshot.
		{"a truncated snapshot", "POST", "/api/v1/oa/snapshot", `[{"id":"d1","type":"dept"`, 400, "JSON"},
		{"a snapshot that is not JSON", "POST", "/api/v1/oa/snapshot", `{not json`, 400, "JSON"},
		{"an empty snapshot body", "POST", "/api/v1/oa/snapshot", ``, 400, "empty"},
		{"a name of the wrong type", "POST", "/api/v1/oa/snapshot", elems(`{"id":"d1","type":"dept","name":123,"parent":"` + root + `"}`), 422, "name"},
		{"an element without an id", "POST", "/api/v1/oa/snapshot", elems(`{"type":"dept","name":"x","parent":"` + root + `"}`), 422, "id"},
		{"an element of an unknown type", "POST", "/api/v1/oa/snapshot", elems(`{"id":"z1","type":"robot","name":"x"}`), 422, "type"},
		{"a name that is not UTF-8", "POST", "/api/v1/oa/snapshot", "[{\"id\":\"d1\",\"type\":\"dept\",\"name\":\"\xff\xfe\",\"parent\":\"" + root + "\"}]", 422, "d1"},
		{"a 10 MB name in a snapshot", "POST", "/api/v1/oa/snapshot", elems(dept("d1", root, big)), 422, "name"},
		{"a duplicate id within one page", "POST", "/api/v1/oa/snapshot", elems(dept("d1", root, "x"), dept("d1", root, "y")), 422, "d1"},
		{"a person who is their own parent", "POST", "/api/v1/oa/snapshot", elems(person("p1", "p1", "selfparent")), 422, "p1"},
		{"a cycle through three units", "POST", "/api/v1/oa/snapshot", elems(dept("d1", "d3", "x"), dept("d2", "d1", "y"), dept("d3", "d2", "z")), 422, "cycle"},
		{"a person without a login", "POST", "/api/v1/oa/snapshot", elems(`{"id":"p9","type":"person","name":"x","parent":"` + root + `","isAvailable":true}`), 422, "loginName"},
		{"two logins that differ only in case", "POST", "/api/v1/oa/snapshot", elems(person("p1", root, "Zhang.San"), person("p2", root, "zhang.san")), 422, "p2"},
		{"an envelope that reports failure", "POST", "/api/v1/oa/snapshot", `{"returnState":1,"message":"[]"}`, 422, "returnState"},

		// A page of OA changes.
		{"a truncated page of changes", "POST", "/api/v1/oa/changes", `{"returnState":2,"message":"[{\\"id\\":`, 400, "JSON"},
		{"a page that is not JSON", "POST", "/api/v1/oa/changes", `<xml/>`, 400, "JSON"},
		{"a login of the wrong type in a page", "POST", "/api/v1/oa/changes", elems(`{"id":"p1","type":"person","name":"x","parent":"` + oaDept + `","loginName":["a"]}`), 422, "p1"},
		{"a duplicate id within a page of changes", "POST", "/api/v1/oa/changes", elems(person("p1", oaDept, "aa1"), person("p1", oaDept, "aa2")), 422, "p1"},
		{"a person who is their own parent in a page", "POST", "/api/v1/oa/changes", elems(person("p1", "p1", "aa1")), 422, "p1"},
		{"a cycle through several units in a page", "POST", "/api/v1/oa/changes", elems(dept("d1", "d2", "x"), dept("d2", "d1", "y")), 422, "cycle"},
		{"a new person with an existing login in other case", "POST", "/api/v1/oa/changes", elems(person("p-new", oaDept, "SunYanYang")), 422, "loginName"},
		{"a page whose envelope count is wrong", "POST", "/api/v1/oa/changes", `{"returnState":2,"count":5,"message":"[]"}`, 422, "count"},

		// Org units.
		{"a truncated unit", "POST", "/api/v1/orgunits", `{"name":"x"`, 400, "truncated"},
		{"a unit body that is not JSON", "POST", "/api/v1/orgunits", `name=x`, 400, "JSON"},
		{"an empty unit body", "POST", "/api/v1/orgunits", ``, 400, "empty"},
		{"a unit body that is an array", "POST", "/api/v1/orgunits", `[{"name":"x"}]`, 400, "object"},
		{"two JSON values in one body", "POST", "/api/v1/orgunits", `{"name":"x","parent_id":"` + a.ID + `"}{"name":"y"}`, 400, "after"},
		{"an unknown field", "POST", "/api/v1/orgunits", `{"name":"x","parent_id":"` + a.ID + `","colour":"red"}`, 400, "colour"},
		{"a unit name of the wrong type", "POST", "/api/v1/orgunits", `{"name":1,"parent_id":"` + a.ID + `"}`, 400, "name"},
		{"a sort order as text", "POST", "/api/v1/orgunits", `{"name":"x","parent_id":"` + a.ID + `","sort_order":"1"}`, 400, "sort_order"},
		{"a sort order too large for its column", "POST", "/api/v1/orgunits", `{"name":"x","parent_id":"` + a.ID + `","sort_order":1e12}`, 400, "sort_order"},
		{"a 10 MB unit name", "POST", "/api/v1/orgunits", `{"name":"` + big + `","parent_id":"` + a.ID + `"}`, 413, "bytes"},
		{"a unit without a name", "POST", "/api/v1/orgunits", `{"parent_id":"` + a.ID + `"}`, 422, "name"},
		{"a unit named with spaces only", "POST", "/api/v1/orgunits", `{"name":"   ","parent_id":"` + a.ID + `"}`, 422, "name"},
		{"a control character in a unit name", "POST", "/api/v1/orgunits", `{"name":"a\u0007b","parent_id":"` + a.ID + `"}`, 422, "name"},
		{"a NUL in a unit name", "POST", "/api/v1/orgunits", `{"name":"a\u0000b","parent_id":"` + a.ID + `"}`, 422, "name"},
		{"invalid UTF-8 in a unit name", "POST", "/api/v1/orgunits", "{\"name\":\"a\xc3\x28\",\"parent_id\":\"" + a.ID + "\"}", 422, "name"},
		{"a lone surrogate in a unit name", "POST", "/api/v1/orgunits", `{"name":"a\ud800","parent_id":"` + a.ID + `"}`, 422, "name"},
		{"a dept without a parent", "POST", "/api/v1/orgunits", `{"name":"x"}`, 422, "parent_id"},
		{"an unknown parent", "POST", "/api/v1/orgunits", `{"name":"x","parent_id":"nope"}`, 422, "parent_id"},
		{"an unknown unit kind", "POST", "/api/v1/orgunits", `{"name":"x","kind":"holding","parent_id":"` + a.ID + `"}`, 422, "kind"},
		{"an OA id another unit holds", "POST", "/api/v1/orgunits", `{"name":"x","parent_id":"` + a.ID + `","oa_id":"` + oaDept + `"}`, 409, "oa_id"},
		{"a unit that is its own parent", "POST", "/api/v1/orgunits/" + a.ID + "/move", `{"parent_id":"` + a.ID + `"}`, 409, "parent_id"},
		{"a cycle through several units", "POST", "/api/v1/orgunits/" + a.ID + "/move", `{"parent_id":"` + c.ID + `"}`, 409, "parent_id"},
		{"a move without a parent", "POST", "/api/v1/orgunits/" + b.ID + "/move", `{}`, 422, "parent_id"},
		{"a rename to nothing", "PATCH", "/api/v1/orgunits/" + b.ID, `{"name":""}`, 422, "name"},
		{"deleting a unit that holds people and units", "DELETE", "/api/v1/orgunits/" + a.ID, ``, 409, u.ID},

		// Users.
		{"a login that differs only in case", "POST", "/api/v1/users", `{"login":"WANGWEI","display_name":"x"}`, 409, "login"},
		{"a login that differs only in width", "POST", "/api/v1/users", `{"login":"ｗａｎｇｗｅｉ","display_name":"x"}`, 409, "login"},
		{"LDAP filter characters in a login", "POST", "/api/v1/users", `{"login":"a*)(uid=*","display_name":"x"}`, 422, "login"},
		{"SQL in a login", "POST", "/api/v1/users", `{"login":"x'; DROP TABLE people;--","display_name":"x"}`, 422, "login"},
		{"a login too long for an address", "POST", "/api/v1/users", `{"login":"` + strings.Repeat("a", 65) + `","display_name":"x"}`, 422, "login"},
		{"a user without a login", "POST", "/api/v1/users", `{"display_name":"x"}`, 422, "login"},
		{"a user without a display name", "POST", "/api/v1/users", `{"login":"lisi"}`, 422, "display_name"},
		{"an address on another domain", "POST", "/api/v1/users", `{"login":"lisi","display_name":"x","address":"lisi@evil.example"}`, 422, "address"},
		{"an address another account holds", "POST", "/api/v1/users", `{"login":"lisi","display_name":"x","address":"ops@egretair.example"}`, 409, "address"},
		{"an OA id on a shared mailbox", "POST", "/api/v1/users", `{"kind":"shared","login":"lisi","display_name":"x","oa_id":"o1"}`, 422, "oa_id"},
		{"an OA id another person holds", "POST", "/api/v1/users", `{"login":"lisi","display_name":"x","oa_id":"oa-ww"}`, 409, "oa_id"},
		{"an unknown kind of user", "POST", "/api/v1/users", `{"kind":"admin","login":"lisi","display_name":"x"}`, 422, "kind"},
		{"a negative quota", "POST", "/api/v1/users", `{"login":"lisi","display_name":"x","quota_bytes":-1}`, 422, "quota_bytes"},
		{"a quota as text", "POST", "/api/v1/users", `{"login":"lisi","display_name":"x","quota_bytes":"1G"}`, 400, "quota_bytes"},
		{"a mobile number of letters", "POST", "/api/v1/users", `{"login":"lisi","display_name":"x","mobile":"call me"}`, 422, "mobile"},
		{"an unknown unit for a user", "POST", "/api/v1/users", `{"login":"lisi","display_name":"x","unit_id":"nope"}`, 422, "unit_id"},
		{"a field the API does not take", "POST", "/api/v1/users", `{"login":"lisi","display_name":"x","is_admin":true}`, 400, "is_admin"},
		{"a short first password", "POST", "/api/v1/users", `{"login":"lisi","display_name":"x","password":"short"}`, 422, "password"},
		{"a display name emptied", "PATCH", "/api/v1/users/" + u.ID, `{"display_name":""}`, 422, "display_name"},
		{"a line separator in a title", "PATCH", "/api/v1/users/" + u.ID, `{"title":"a\u2028b"}`, 422, "title"},
		{"a login change, which the API does not do", "PATCH", "/api/v1/users/" + u.ID, `{"login":"other"}`, 400, "login"},
		{"an alias another account holds", "POST", "/api/v1/users/" + v.ID + "/aliases", `{"address":"wangwei@egretair.example"}`, 409, "address"},
		{"an alias that is not an address", "POST", "/api/v1/users/" + v.ID + "/aliases", `{"address":"<script>"}`, 422, "address"},
		{"an address change to another's address", "POST", "/api/v1/users/" + v.ID + "/address", `{"address":"WangWei@egretair.example"}`, 409, "address"},
		{"a negative retention", "DELETE", "/api/v1/users/" + u.ID + "?retention_days=-1", ``, 400, "retention_days"},
		{"a retention that is not a number", "DELETE", "/api/v1/users/" + u.ID + "?retention_days=forever", ``, 400, "retention_days"},
		{"a restore of an account not deleted", "POST", "/api/v1/users/" + u.ID + "/restore", ``, 409, "status"},
		{"an audit time that is not a time", "GET", "/api/v1/audit?since=yesterday", ``, 400, "since"},
	}
	if len(cases) < 40 {
		t.Fatalf("only %d cases", len(cases))
	}

	sum := tablesChecksum(t, env.store)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var raw json.RawMessage
			code := call(t, env.ts, adminKey, c.method, c.path, strings.NewReader(c.body), &raw)
			if code != c.status {
				t.Errorf("status %d, want %d: %.300s", code, c.status, raw)
			}
			var e apiError
			json.Unmarshal(raw, &e)
			if e.Error.Code == "" || e.Error.Message == "" || !strings.Contains(string(raw), c.names) {
				t.Errorf("answer %.300s does not name %q", raw, c.names)
			}
			if got := tablesChecksum(t, env.store); got != sum {
				t.Errorf("the directory changed")
				sum = got
			}
		})
	}
}

// The sync must compare logins as the lifecycle API does, ignoring width
// as well as case: otherwise "ｓｕｎｙａｎｙａｎｇ" becomes a second person
// beside sunyanyang, with a look-alike address.
func TestOAChangesRefuseALoginThatDiffersOnlyInWidth(t *testing.T) {
	env := newLifecycleEnv(t, "sqlite")
	importSmall(t, env.ts)
	sum := tablesChecksum(t, env.store)
	var raw json.RawMessage
	body := elems(person("p-new", "9531985d5d9dc9f81818e811892f902b", "ｓｕｎｙａｎｙａｎｇ"))
	code := call(t, env.ts, adminKey, "POST", "/api/v1/oa/changes", strings.NewReader(body), &raw)
	if code != 422 || !strings.Contains(string(raw), "p-new") {
		t.Errorf("status %d, want 422 naming p-new: %.300s", code, raw)
	}
	if tablesChecksum(t, env.store) != sum {
		t.Errorf("the directory changed")
	}
}

func TestMetacharactersAreKeptAsData(t *testing.T) {
	env := newLifecycleEnv(t, "sqlite")
	names := []string{
		`ou=Ops,dc=egret*)(|(cn=*))\`,
		`Crew'); DROP TABLE org_units;--`,
		`"引号" <尖括号> & 100%_`,
	}
	var root directory.UnitView
	env.do(t, "POST", "/api/v1/orgunits", map[string]any{"name": names[0], "kind": "org"}, 201, &root)
	for _, n := range names {
		var unit directory.UnitView
		env.do(t, "POST", "/api/v1/orgunits", map[string]any{"name": n, "parent_id": root.ID}, 201, &unit)
		var got directory.UnitView
		env.do(t, "GET", "/api/v1/orgunits/"+unit.ID, nil, 200, &got)
		if got.Name != n {
			t.Errorf("unit name %q reads back as %q", n, got.Name)
		}
		var u directory.User
		env.do(t, "POST", "/api/v1/users", map[string]any{"login": fmt.Sprintf("meta%d", len(n)), "display_name": n, "title": n}, 201, &u)
		if u.DisplayName != n || u.Title != n {
			t.Errorf("display name %q reads back as %q / %q", n, u.DisplayName, u.Title)
		}
	}
	var n int64
	env.store.DB().Table("org_units").Count(&n)
	if n != int64(len(names)+1) {
		t.Fatalf("%d units, want %d", n, len(names)+1)
	}
	_ = context.Background
}
