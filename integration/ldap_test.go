package integration

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/directory/dirtest"
	"github.com/egretair/egret/directory/ldapmirror"
	"github.com/egretair/egret/directory/ldapmirror/ldaptest"
	"github.com/egretair/egret/oasync"
)

const ldapDomain = "egretair.example"

// ldapRig is a directory, a private slapd and a mirror between them.
type ldapRig struct {
	store  *directory.Store
	srv    *ldaptest.Server
	mirror *ldapmirror.Mirror
	imp    *oasync.Importer
	dbURL  string
}

// egret runs the binary with the rig's database and LDAP server.
func (r *ldapRig) egret(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(egretBin, args...)
	cmd.Env = append(os.Environ(),
		"EGRET_NODE_DATA_DIR="+t.TempDir(),
		"EGRET_DATABASE_URL="+r.dbURL,
		"EGRET_MAIL_DOMAIN="+ldapDomain,
		"EGRET_LDAP_URL="+r.srv.URL,
		"EGRET_LDAP_BIND_DN="+ldaptest.RootDN,
		"EGRET_LDAP_BIND_PASSWORD="+ldaptest.RootPassword,
		"EGRET_LDAP_BASE_DN="+ldaptest.Base,
		"EGRET_LOG_LEVEL=warn")
	var out, errb strings.Builder
	cmd.Stdout = &out
	cmd.Stderr = &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("egret %s: %w\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

func newLDAPRig(t testing.TB) *ldapRig {
	t.Helper()
	srv := ldaptest.Start(t)
	url := dirtest.URL(t, "sqlite")
	store, err := directory.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	r := &ldapRig{
		store: store,
		srv:   srv,
		dbURL: url,
		imp:   &oasync.Importer{Store: store, Domain: ldapDomain, DisableThreshold: -1},
		mirror: &ldapmirror.Mirror{Store: store, Config: ldapmirror.Config{
			URL: srv.URL, BindDN: ldaptest.RootDN, Password: ldaptest.RootPassword,
			BaseDN: ldaptest.Base,
		}},
	}
	return r
}

func (r *ldapRig) importFile(t testing.TB, path string, changes bool) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx := context.Background()
	if changes {
		_, err = r.imp.ImportChanges(ctx, f, oasync.Options{})
	} else {
		_, err = r.imp.ImportSnapshot(ctx, f, oasync.Options{})
	}
	if err != nil {
		t.Fatalf("import %s: %v", path, err)
	}
}

// catchUp steps the mirror until it has applied the whole log.
func (r *ldapRig) catchUp(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < 1000; i++ {
		if _, err := r.mirror.Step(ctx); err != nil {
			t.Fatalf("mirror step: %v", err)
		}
		lag, err := ldapmirror.Status(ctx, r.store)
		if err != nil {
			t.Fatal(err)
		}
		if lag.Started && lag.Rows == 0 {
			return
		}
	}
	t.Fatal("mirror did not catch up")
}

// ldapTool runs an OpenLDAP client against the rig's server.
func (r *ldapRig) ldapTool(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	bin := ldaptest.Tool(t, name)
	cmd := exec.Command(bin, append([]string{"-x", "-H", r.srv.URL}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// parseLDIF reads ldapsearch -LLL output: entries of attribute values,
// base64 ("::") decoded, continuation lines joined.
func parseLDIF(t *testing.T, s string) []map[string][]string {
	t.Helper()
	var out []map[string][]string
	var cur map[string][]string
	lines := strings.Split(strings.ReplaceAll(s, "\n ", ""), "\n")
	for _, ln := range lines {
		if ln == "" {
			cur = nil
			continue
		}
		if cur == nil {
			cur = map[string][]string{}
			out = append(out, cur)
		}
		k, v, ok := strings.Cut(ln, ":")
		if !ok {
			continue
		}
		if strings.HasPrefix(v, ": ") {
			b, err := base64.StdEncoding.DecodeString(v[2:])
			if err != nil {
				t.Fatalf("ldif %q: %v", ln, err)
			}
			v = string(b)
		} else {
			v = strings.TrimPrefix(v, " ")
		}
		cur[strings.ToLower(k)] = append(cur[strings.ToLower(k)], v)
	}
	return out
}

func rootArgs() []string {
	return []string{"-D", ldaptest.RootDN, "-w", ldaptest.RootPassword}
}

// dnOfID finds an entry by egret's id with ldapsearch.
func (r *ldapRig) dnOfID(t *testing.T, id string) string {
	t.Helper()
	out, err := r.ldapTool(t, "ldapsearch", append(rootArgs(), "-LLL", "-b", ldaptest.Base,
		"(uniqueIdentifier="+ldap.EscapeFilter(id)+")", "1.1")...)
	if err != nil {
		t.Fatalf("ldapsearch: %v\n%s", err, out)
	}
	es := parseLDIF(t, out)
	if len(es) != 1 {
		t.Fatalf("%d entries carry id %s, want 1:\n%s", len(es), id, out)
	}
	return es[0]["dn"][0]
}

// TestLDAPMirror imports the full OA export, mirrors it, and reads it
// back with the OpenLDAP tools; then follows the five change pages,
// two of them while slapd is down; then repairs hand edits.
func TestLDAPMirror(t *testing.T) {
	r := newLDAPRig(t)
	ctx := context.Background()
	r.importFile(t, filepath.Join(repoRoot, "testdata/oa/ekp-full.json.gz"), false)
	r.catchUp(t)

	t.Run("a department lists exactly its enabled people", func(t *testing.T) {
		var unit struct {
			UnitID string
			N      int
		}
		err := r.store.DB().Raw(`SELECT p.unit_id, COUNT(*) AS n FROM people p
			JOIN accounts a ON a.person_id = p.id
			WHERE p.status = 'active' AND a.status = 'enabled' AND p.unit_id IS NOT NULL
			GROUP BY p.unit_id ORDER BY n DESC LIMIT 1`).Scan(&unit).Error
		if err != nil || unit.N < 2 {
			t.Fatalf("no department with people: %v", err)
		}
		var want []struct {
			Login, DisplayName, Mobile, Address, EmployeeNo string
		}
		err = r.store.DB().Raw(`SELECT p.login, p.display_name, p.mobile, a.address, p.employee_no
			FROM people p JOIN accounts a ON a.person_id = p.id
			WHERE p.unit_id = ? AND p.status = 'active' AND a.status = 'enabled'`, unit.UnitID).
			Scan(&want).Error
		if err != nil {
			t.Fatal(err)
		}
		dn := r.dnOfID(t, unit.UnitID)
		out, err := r.ldapTool(t, "ldapsearch", append(rootArgs(), "-LLL", "-b", dn, "-s", "one",
			"(objectClass=inetOrgPerson)", "uid", "cn", "sn", "givenName", "mail", "mobile", "employeeNumber")...)
		if err != nil {
			t.Fatalf("ldapsearch: %v\n%s", err, out)
		}
		got := map[string]map[string][]string{}
		for _, e := range parseLDIF(t, out) {
			got[e["uid"][0]] = e
		}
		if len(got) != len(want) {
			t.Fatalf("%s lists %d people, the directory has %d enabled there", dn, len(got), len(want))
		}
		for _, w := range want {
			e := got[w.Login]
			if e == nil {
				t.Fatalf("%s is missing from %s", w.Login, dn)
			}
			if e["cn"][0] != w.DisplayName || e["mail"][0] != w.Address ||
				(w.Mobile != "" && e["mobile"][0] != w.Mobile) ||
				(w.EmployeeNo != "" && e["employeenumber"][0] != w.EmployeeNo) {
				t.Errorf("%s: LDAP has %v, directory %+v", w.Login, e, w)
			}
			sn, given := e["sn"][0], strings.Join(e["givenname"], "")
			split := sn + given
			if strings.Contains(w.DisplayName, " ") {
				split = given + " " + sn
			}
			if split != w.DisplayName || sn == "" {
				t.Errorf("%s: sn %q givenName %q do not split %q", w.Login, sn, e["givenname"], w.DisplayName)
			}
		}
	})

	t.Run("a person binds with their mail password", func(t *testing.T) {
		users, _, err := r.store.ListUsers(ctx, directory.UserFilter{Status: "enabled", Limit: 1})
		if err != nil || len(users) != 1 {
			t.Fatalf("no enabled user: %v", err)
		}
		u := users[0]
		if _, err := r.store.SetPassword(ctx, u.Login, "Ldap-bind-pw-1"); err != nil {
			t.Fatal(err)
		}
		r.catchUp(t)
		dn := r.dnOfID(t, u.ID)
		out, err := r.ldapTool(t, "ldapwhoami", "-D", dn, "-w", "Ldap-bind-pw-1")
		if err != nil || !strings.Contains(normSpace(out), "dn:"+strings.ToLower(dn)) &&
			!strings.Contains(out, "dn:") {
			t.Fatalf("ldapwhoami as %s: %v\n%s", dn, err, out)
		}
		if out, err := r.ldapTool(t, "ldapwhoami", "-D", dn, "-w", "wrong-password"); err == nil {
			t.Fatalf("a wrong password binds: %s", out)
		}
	})

	pages := func(from, to int) {
		for i := from; i <= to; i++ {
			r.importFile(t, filepath.Join(repoRoot, "testdata/oa", "ekp-changes-0"+string(rune('0'+i))+".json"), true)
		}
	}

	t.Run("three change pages", func(t *testing.T) {
		pages(1, 3)
		r.catchUp(t)
		assertMirrored(t, r)
	})

	t.Run("two change pages while slapd is down", func(t *testing.T) {
		r.srv.Stop()
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			r.mirror.Poll = 50 * time.Millisecond
			r.mirror.Run(runCtx)
			close(done)
		}()
		pages(4, 5)
		time.Sleep(time.Second)
		lag, err := ldapmirror.Status(ctx, r.store)
		if err != nil || lag.Rows == 0 {
			t.Fatalf("with slapd down the mirror should lag: %+v %v", lag, err)
		}
		r.srv.Restart(t)
		deadline := time.Now().Add(90 * time.Second)
		for {
			lag, err = ldapmirror.Status(ctx, r.store)
			if err != nil {
				t.Fatal(err)
			}
			if lag.Rows == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("mirror did not catch up after slapd came back: %+v", lag)
			}
			time.Sleep(100 * time.Millisecond)
		}
		stop()
		<-done
		assertMirrored(t, r)
	})

	t.Run("reconcile repairs hand edits", func(t *testing.T) {
		conn := rootConn(t, r)
		var ps []directory.User
		ps, _, err := r.store.ListUsers(ctx, directory.UserFilter{Status: "enabled", Limit: 2})
		if err != nil || len(ps) != 2 {
			t.Fatal(err)
		}
		edited, deleted := r.dnOfID(t, ps[0].ID), r.dnOfID(t, ps[1].ID)
		mod := ldap.NewModifyRequest(edited, nil)
		mod.Replace("mail", []string{"someone@else.example"})
		mod.Add("description", []string{"added by hand"})
		if err := conn.Modify(mod); err != nil {
			t.Fatal(err)
		}
		if err := conn.Del(ldap.NewDelRequest(deleted, nil)); err != nil {
			t.Fatal(err)
		}
		_, parent, _ := strings.Cut(edited, ",")
		stray := "cn=stray,ou=" + ldapmirror.GroupsOU + "," + ldaptest.Base
		add := ldap.NewAddRequest(stray, nil)
		add.Attribute("objectClass", []string{"groupOfNames"})
		add.Attribute("cn", []string{"stray"})
		add.Attribute("member", []string{edited})
		if err := conn.Add(add); err != nil {
			t.Fatal(err)
		}
		strayOU := "ou=hand-made," + parent
		add = ldap.NewAddRequest(strayOU, nil)
		add.Attribute("objectClass", []string{"organizationalUnit"})
		add.Attribute("ou", []string{"hand-made"})
		if err := conn.Add(add); err != nil {
			t.Fatal(err)
		}

		out, err := r.egret(t, "ldap", "reconcile", "--dry-run", "--json")
		if err != nil {
			t.Fatal(err)
		}
		var rep ldapmirror.Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("report: %v\n%s", err, out)
		}
		if !hasDN(rep.Modified, edited) || !hasDN(rep.Added, deleted) ||
			!hasDN(rep.Deleted, stray) || !hasDN(rep.Deleted, strayOU) {
			t.Fatalf("dry run does not name the edits: added %v, modified %v, deleted %v",
				rep.Added, rep.Modified, rep.Deleted)
		}
		if e := readDN(t, conn, edited); e.GetAttributeValue("mail") != "someone@else.example" {
			t.Fatal("a dry run changed LDAP")
		}
		out, err = r.egret(t, "ldap", "reconcile")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "1 added, 0 moved, 1 modified, 2 deleted") {
			t.Errorf("reconcile report:\n%s", out)
		}
		for _, dn := range []string{edited, deleted, stray, strayOU} {
			if !strings.Contains(normSpace(strings.ToLower(out)), normSpace(strings.ToLower(dn))) {
				t.Errorf("the report does not name %s:\n%s", dn, out)
			}
		}
		if e := readDN(t, conn, edited); e.GetAttributeValue("mail") == "someone@else.example" ||
			e.GetAttributeValue("description") != "" {
			t.Error("the hand edit is still there")
		}
		assertMirrored(t, r)
		again, err := r.mirror.Reconcile(ctx, true)
		if err != nil || again.Changed() != 0 {
			t.Fatalf("after reconcile, drift remains: %+v %v", again, err)
		}
		status, err := r.egret(t, "status")
		if err != nil || !strings.Contains(status, "0 rows behind") {
			t.Errorf("egret status: %v\n%s", err, status)
		}
	})
}

func hasDN(list []string, dn string) bool {
	for _, v := range list {
		if strings.EqualFold(normSpace(v), normSpace(dn)) {
			return true
		}
	}
	return false
}

func normSpace(s string) string { return strings.Join(strings.Fields(s), "") }

func rootConn(t *testing.T, r *ldapRig) *ldap.Conn {
	t.Helper()
	conn, err := ldap.DialURL(r.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.Bind(ldaptest.RootDN, ldaptest.RootPassword); err != nil {
		t.Fatal(err)
	}
	return conn
}

func readDN(t *testing.T, conn *ldap.Conn, dn string) *ldap.Entry {
	t.Helper()
	res, err := conn.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases,
		0, 0, false, "(objectClass=*)", []string{"*"}, nil))
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("read %s: %v", dn, err)
	}
	return res.Entries[0]
}

// assertMirrored reads the whole directory and the whole LDAP tree and
// compares them entry by entry, by egret's id: every unit under its
// parent's entry, every enabled person in their unit with their names,
// mail and password, everyone else in former-staff without a password,
// every group with its enabled members; and nothing else.
func assertMirrored(t *testing.T, r *ldapRig) {
	t.Helper()
	conn := rootConn(t, r)
	res, err := conn.SearchWithPaging(ldap.NewSearchRequest(ldaptest.Base, ldap.ScopeWholeSubtree,
		ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{"*"}, nil), 1000)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]*ldap.Entry{}
	byDN := map[string]*ldap.Entry{}
	norm := func(dn string) string {
		d, err := ldap.ParseDN(dn)
		if err != nil {
			t.Fatalf("bad dn %q", dn)
		}
		return strings.ToLower(d.String())
	}
	for _, e := range res.Entries {
		byDN[norm(e.DN)] = e
		id := e.GetAttributeValue("uniqueIdentifier")
		if id == "" {
			if !strings.EqualFold(e.DN, ldaptest.Base) {
				t.Errorf("entry %s is not egret's", e.DN)
			}
			continue
		}
		if byID[id] != nil {
			t.Errorf("id %s twice: %s and %s", id, byID[id].DN, e.DN)
		}
		byID[id] = e
	}
	parentOf := func(dn string) string {
		d, err := ldap.ParseDN(dn)
		if err != nil || len(d.RDNs) < 2 {
			t.Fatalf("bad dn %q", dn)
		}
		p := &ldap.DN{RDNs: d.RDNs[1:]}
		return strings.ToLower(p.String())
	}

	var units []directory.OrgUnit
	r.store.DB().Find(&units)
	for _, u := range units {
		e := byID[u.ID]
		if e == nil {
			t.Errorf("unit %s %q missing", u.ID, u.Name)
			continue
		}
		if !contains(e.GetAttributeValues("ou"), u.Name) {
			t.Errorf("unit %s: ou %v lacks %q", u.ID, e.GetAttributeValues("ou"), u.Name)
		}
		want := norm(ldaptest.Base)
		if u.ParentID != nil {
			if pe := byID[*u.ParentID]; pe != nil {
				want = norm(pe.DN)
			}
		}
		if parentOf(e.DN) != want {
			t.Errorf("unit %q at %s, want under %s", u.Name, e.DN, want)
		}
	}

	var people []struct {
		directory.Person
		AccountStatus string
		Address       string
		PasswordHash  string
	}
	r.store.DB().Table("people").Select("people.*, accounts.status AS account_status, " +
		"accounts.address, accounts.password_hash").
		Joins("LEFT JOIN accounts ON accounts.person_id = people.id").Scan(&people)
	enabledDN := map[string]string{}
	formerStaff := norm("ou=" + ldapmirror.FormerStaffOU + "," + ldaptest.Base)
	nPeople := 0
	for _, p := range people {
		e := byID[p.ID]
		if e == nil {
			t.Errorf("person %s %q missing", p.ID, p.Login)
			continue
		}
		nPeople++
		on := p.Status == directory.PersonActive && p.AccountStatus == directory.AccountEnabled
		switch {
		case on && p.UnitID != nil:
			if ue := byID[*p.UnitID]; ue == nil || parentOf(e.DN) != norm(ue.DN) {
				t.Errorf("person %s at %s, not in unit %s", p.Login, e.DN, *p.UnitID)
			}
			enabledDN[p.ID] = norm(e.DN)
		case !on && parentOf(e.DN) != formerStaff:
			t.Errorf("person %s (%s, %s) at %s, want in former-staff", p.Login, p.Status, p.AccountStatus, e.DN)
		}
		if on && p.UnitID != nil && !unitName(units, *p.UnitID, e.GetAttributeValue("ou")) {
			t.Errorf("person %s: ou %q is not their unit's name", p.Login, e.GetAttributeValue("ou"))
		}
		if e.GetAttributeValue("uid") != p.Login || e.GetAttributeValue("cn") != p.DisplayName ||
			e.GetAttributeValue("mail") != p.Address {
			t.Errorf("person %s: uid %q cn %q mail %q; directory %q %q %q", p.ID,
				e.GetAttributeValue("uid"), e.GetAttributeValue("cn"), e.GetAttributeValue("mail"),
				p.Login, p.DisplayName, p.Address)
		}
		wantPW := ""
		if on && p.PasswordHash != "" {
			wantPW = "{ARGON2}" + p.PasswordHash
		}
		if got := e.GetAttributeValue("userPassword"); got != wantPW {
			t.Errorf("person %s: userPassword %q, want %q", p.Login, got, wantPW)
		}
	}

	var groups []directory.Group
	r.store.DB().Where("available = ?", true).Find(&groups)
	var members []directory.GroupMember
	r.store.DB().Find(&members)
	for _, g := range groups {
		e := byID[g.ID]
		if e == nil {
			t.Errorf("group %q missing", g.Name)
			continue
		}
		var want []string
		for _, m := range members {
			if m.GroupID == g.ID && m.MemberKind == directory.MemberPerson && enabledDN[m.MemberID] != "" {
				want = append(want, enabledDN[m.MemberID])
			}
		}
		var got []string
		for _, v := range e.GetAttributeValues("member") {
			if n := norm(v); n != norm(ldaptest.Base) && byDN[n] != nil &&
				byDN[n].GetAttributeValue("uid") != "" {
				got = append(got, n)
			}
		}
		sort.Strings(want)
		sort.Strings(got)
		if strings.Join(want, "|") != strings.Join(got, "|") {
			t.Errorf("group %q: %d members in LDAP, %d enabled in the directory", g.Name, len(got), len(want))
		}
	}
	if want := len(units) + nPeople + len(groups) + 2; len(byID) != want {
		t.Errorf("LDAP holds %d egret entries, the directory %d", len(byID), want)
	}
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func unitName(units []directory.OrgUnit, id, ou string) bool {
	for _, u := range units {
		if u.ID == id {
			return u.Name == ou
		}
	}
	return false
}
