package oasync_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/oasync"
)

const domain = "egretair.example"

// obj is an EKP element as a test writes it.
type obj = map[string]any

func orgEl(id, name string) obj {
	return obj{"id": id, "type": "org", "name": name, "order": "1", "isAvailable": true,
		"alterTime": "2026-11-30 08:00:00.000"}
}

func deptEl(id, name, parent string) obj {
	return obj{"id": id, "type": "dept", "name": name, "parent": parent, "order": "10",
		"isAvailable": true, "alterTime": "2026-11-30 08:00:01.000"}
}

func postEl(id, name, parent string, persons ...string) obj {
	return obj{"id": id, "type": "post", "name": name, "parent": parent, "order": "",
		"isAvailable": true, "alterTime": "2026-11-30 08:00:02.000", "persons": persons}
}

func personEl(id, name, parent, login string, email any, mobile string, posts ...string) obj {
	if posts == nil {
		posts = []string{}
	}
	return obj{"id": id, "type": "person", "name": name, "parent": parent, "no": "E" + id,
		"loginName": login, "loginNameLower": login, "nickName": "", "email": email,
		"mobileNo": mobile, "workPhone": "0592-5700000", "sex": "F", "isAvailable": true,
		"order": "5", "alterTime": "2026-11-30 08:06:10.104", "posts": posts}
}

func groupEl(id, name string, members ...string) obj {
	return obj{"id": id, "type": "group", "name": name, "isAvailable": true,
		"alterTime": "2026-11-30 09:00:00.000", "members": members}
}

// base is a small valid organisation; each call answers a fresh copy.
func base() []obj {
	return []obj{
		orgEl("org1", "鹭航航空"),
		deptEl("d-ops", "运行控制部", "org1"),
		deptEl("d-fly", "飞行部", "org1"),
		postEl("p-duty", "值班经理", "d-ops", "u-wang"),
		personEl("u-wang", "王伟", "d-ops", "WangWei", "wangwei@egretair.example", "+86 130 2570 7419", "p-duty"),
		personEl("u-li", "李娜", "d-fly", "lina", "Lina@163.example", "13025707418"),
		personEl("u-zhao", "赵敏", "d-fly", "zhaomin", nil, ""),
		groupEl("g-safety", "安全委员会", "u-wang", "u-li", "d-fly"),
	}
}

// find answers the element with the given id in els.
func find(els []obj, id string) obj {
	for _, e := range els {
		if e["id"] == id {
			return e
		}
	}
	panic("no element " + id)
}

// envelope writes elements as EKP's export service does: the array as a
// JSON string inside the envelope.
func envelope(t testing.TB, els []obj) []byte {
	t.Helper()
	arr := bare(t, els)
	b, err := json.Marshal(obj{"returnState": 2, "message": string(arr), "count": len(els),
		"timeStamp": "2026-11-30 09:29:34.133"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func bare(t testing.TB, els []obj) []byte {
	t.Helper()
	b, err := json.Marshal(els)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "oa", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func importer(s *directory.Store) *oasync.Importer {
	return &oasync.Importer{
		Store:  s,
		Domain: domain,
		Log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func mustImport(t testing.TB, s *directory.Store, input []byte, dry bool) *oasync.Report {
	t.Helper()
	rep, err := importer(s).ImportSnapshot(context.Background(), bytes.NewReader(input),
		oasync.Options{DryRun: dry})
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	return rep
}

// fingerprint digests every row of every table, so that a test can tell
// whether anything at all was written.
func fingerprint(t testing.TB, s *directory.Store) string {
	t.Helper()
	db, err := s.SQL()
	if err != nil {
		t.Fatal(err)
	}
	tables := []struct{ name, order string }{
		{"org_units", "id"},
		{"posts", "id"},
		{"people", "id"},
		{"person_posts", "person_id, post_id"},
		{"accounts", "id"},
		{"org_groups", "id"},
		{"group_members", "group_id, member_kind, member_id"},
		{"change_log", "seq"},
		{"api_keys", "id"},
	}
	h := sha256.New()
	counts := ""
	for _, tb := range tables {
		n := digestTable(t, db, tb.name, tb.order, h)
		counts += fmt.Sprintf("%s=%d ", tb.name, n)
	}
	return counts + hex.EncodeToString(h.Sum(nil))
}

func digestTable(t testing.TB, db *sql.DB, table, order string, h io.Writer) int {
	t.Helper()
	rows, err := db.Query("SELECT * FROM " + table + " ORDER BY " + order)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	vals := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	n := 0
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			fmt.Fprintf(h, "%d:%s|", len(v), v)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// personByOA answers the directory's person with this OA id, with their
// account and posts.
func personByOA(t testing.TB, s *directory.Store, oa string) *directory.User {
	t.Helper()
	var p directory.Person
	if err := s.DB().Where("oa_id = ?", oa).Take(&p).Error; err != nil {
		t.Fatalf("person %s: %v", oa, err)
	}
	u, err := s.GetUser(context.Background(), p.ID)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func unitByOA(t testing.TB, s *directory.Store, oa string) *directory.OrgUnit {
	t.Helper()
	var u directory.OrgUnit
	if err := s.DB().Where("oa_id = ?", oa).Take(&u).Error; err != nil {
		t.Fatalf("unit %s: %v", oa, err)
	}
	return &u
}

func count(t testing.TB, s *directory.Store, model any, where string, args ...any) int64 {
	t.Helper()
	var n int64
	q := s.DB().Model(model)
	if where != "" {
		q = q.Where(where, args...)
	}
	if err := q.Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// counts drops what differs between two runs of the same import, and
// the source, which names the input's bytes rather than its meaning.
func counts(r *oasync.Report) oasync.Report {
	c := *r
	c.DryRun, c.DurationMS, c.Warnings = false, 0, nil
	c.Source = oasync.Source{}
	return c
}
