package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/directory/ldapmirror"
	"github.com/egretair/egret/directory/ldapmirror/ldaptest"
)

// TestLDAPNamesWithSpecialCharacters mirrors units and people whose
// names hold every DN special, two sibling units of one name, renames,
// a move of a department with people in it, a leaver and a rehire, and
// reads them back with ldapsearch and ldapwhoami.
func TestLDAPNamesWithSpecialCharacters(t *testing.T) {
	r := newLDAPRig(t)
	ctx := directory.WithActor(context.Background(), "test")
	life := &directory.Lifecycle{Store: r.store, Domain: ldapDomain}

	org, err := life.CreateUnit(ctx, directory.NewUnit{Name: "鹭航 (测试)", Kind: directory.UnitOrg})
	if err != nil {
		t.Fatal(err)
	}
	weird := `Ops, "North" + <East>; #1 \ Zoë`
	w, err := life.CreateUnit(ctx, directory.NewUnit{Name: weird, ParentID: org.ID})
	if err != nil {
		t.Fatal(err)
	}
	a, err := life.CreateUnit(ctx, directory.NewUnit{Name: "运行控制部", ParentID: org.ID})
	if err != nil {
		t.Fatal(err)
	}
	b, err := life.CreateUnit(ctx, directory.NewUnit{Name: "运行控制部", ParentID: org.ID})
	if err != nil {
		t.Fatal(err)
	}
	ouyang, err := life.CreateUser(ctx, directory.NewUser{Login: "ouyangnana", DisplayName: "欧阳娜娜",
		UnitID: w.ID, Mobile: "13800000001", WorkPhone: "0592-5550001"})
	if err != nil {
		t.Fatal(err)
	}
	jack, err := life.CreateUser(ctx, directory.NewUser{Login: "jack.obrien",
		DisplayName: `Jack "Jr" O'Brien, + Co`, UnitID: b.ID, WorkPhone: "6688#201"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.SetPassword(ctx, "jack.obrien", "Jack-pass-123"); err != nil {
		t.Fatal(err)
	}
	r.catchUp(t)

	// The unit with every special is found by an escaped filter and
	// lists its person under an escaped DN.
	out, err := r.ldapTool(t, "ldapsearch", append(rootArgs(), "-LLL", "-b", ldaptest.Base,
		"(&(objectClass=organizationalUnit)(ou="+ldap.EscapeFilter(weird)+"))", "ou")...)
	if err != nil {
		t.Fatalf("ldapsearch: %v\n%s", err, out)
	}
	es := parseLDIF(t, out)
	if len(es) != 1 || es[0]["ou"][0] != weird {
		t.Fatalf("(ou=%s) finds %v", weird, es)
	}
	wdn := es[0]["dn"][0]
	out, err = r.ldapTool(t, "ldapsearch", append(rootArgs(), "-LLL", "-b", wdn, "-s", "one",
		"(uid=ouyangnana)", "sn", "givenName", "cn", "mobile", "telephoneNumber")...)
	if err != nil {
		t.Fatalf("ldapsearch -b %s: %v\n%s", wdn, err, out)
	}
	es = parseLDIF(t, out)
	if len(es) != 1 || es[0]["sn"][0] != "欧阳" || es[0]["givenname"][0] != "娜娜" ||
		es[0]["cn"][0] != "欧阳娜娜" || es[0]["mobile"][0] != "13800000001" {
		t.Fatalf("欧阳娜娜 reads back as %v", es)
	}

	// Two siblings of one name: two entries, both found by the name.
	adn, bdn := r.dnOfID(t, a.ID), r.dnOfID(t, b.ID)
	if strings.EqualFold(adn, bdn) {
		t.Fatalf("siblings share %s", adn)
	}
	out, _ = r.ldapTool(t, "ldapsearch", append(rootArgs(), "-LLL", "-b", ldaptest.Base,
		"(&(objectClass=organizationalUnit)(ou=运行控制部))", "1.1")...)
	if n := len(parseLDIF(t, out)); n != 2 {
		t.Fatalf("(ou=运行控制部) finds %d entries, want 2", n)
	}

	// Jack binds with his mail password.
	jdn := r.dnOfID(t, jack.ID)
	if out, err := r.ldapTool(t, "ldapwhoami", "-D", jdn, "-w", "Jack-pass-123"); err != nil {
		t.Fatalf("ldapwhoami as %s: %v\n%s", jdn, err, out)
	}

	// Renaming the older sibling moves neither the newer nor Jack.
	newName := "运控中心"
	if _, err := life.UpdateUnit(ctx, a.ID, directory.UnitChange{Name: &newName}); err != nil {
		t.Fatal(err)
	}
	// The weird unit moves under the newer sibling, with its person.
	if _, err := life.MoveUnit(ctx, w.ID, b.ID); err != nil {
		t.Fatal(err)
	}
	r.catchUp(t)
	if got := r.dnOfID(t, b.ID); got != bdn {
		t.Errorf("the newer sibling moved from %s to %s", bdn, got)
	}
	if got := r.dnOfID(t, jack.ID); got != jdn {
		t.Errorf("Jack moved from %s to %s", jdn, got)
	}
	odn := r.dnOfID(t, ouyang.ID)
	if !strings.HasSuffix(odn, ","+r.dnOfID(t, w.ID)) || !strings.HasSuffix(r.dnOfID(t, w.ID), ","+bdn) {
		t.Errorf("after the move 欧阳娜娜 is at %s", odn)
	}

	// Jack leaves: former-staff, no bind. Then he is rehired.
	if _, err := life.SetEnabled(ctx, jack.ID, false); err != nil {
		t.Fatal(err)
	}
	r.catchUp(t)
	left := r.dnOfID(t, jack.ID)
	if !strings.Contains(left, "ou="+ldapmirror.FormerStaffOU+",") {
		t.Errorf("a leaver is at %s", left)
	}
	if out, err := r.ldapTool(t, "ldapwhoami", "-D", left, "-w", "Jack-pass-123"); err == nil {
		t.Errorf("a leaver still binds: %s", out)
	}
	if _, err := life.SetEnabled(ctx, jack.ID, true); err != nil {
		t.Fatal(err)
	}
	r.catchUp(t)
	if got := r.dnOfID(t, jack.ID); got != jdn {
		t.Errorf("a rehire is at %s, want %s", got, jdn)
	}
	if out, err := r.ldapTool(t, "ldapwhoami", "-D", jdn, "-w", "Jack-pass-123"); err != nil {
		t.Errorf("a rehire cannot bind: %v\n%s", err, out)
	}
	assertMirrored(t, r)
}

// TestLDAPExportLoadsWithLdapadd exports the small OA fixture as LDIF
// with the binary, loads it into an empty slapd with ldapadd, and finds
// nothing for reconcile to change there.
func TestLDAPExportLoadsWithLdapadd(t *testing.T) {
	r := newLDAPRig(t)
	r.importFile(t, filepath.Join(repoRoot, "testdata/oa/ekp-small.json"), false)
	file := filepath.Join(t.TempDir(), "tree.ldif")
	if _, err := r.egret(t, "ldap", "export-ldif", "-o", file); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	entries := strings.Count(string(b), "\ndn") + 1
	out, err := r.ldapTool(t, "ldapadd", append(rootArgs(), "-f", file)...)
	if err != nil {
		t.Fatalf("ldapadd: %v\n%s", err, out)
	}
	if n := strings.Count(out, "adding new entry"); n != entries || entries < 10 {
		t.Fatalf("ldapadd added %d of %d entries", n, entries)
	}
	rep, err := r.mirror.Reconcile(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Changed() != 0 {
		t.Fatalf("the loaded LDIF differs from the mirror's tree: added %v, modified %v, deleted %v, moved %v",
			rep.Added, rep.Modified, rep.Deleted, rep.Moved)
	}
}
