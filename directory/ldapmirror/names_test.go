package ldapmirror

import (
	"testing"

	"github.com/go-ldap/ldap/v3"
)

func TestSplitName(t *testing.T) {
	cases := []struct{ name, sn, given string }{
		{"张伟", "张", "伟"},
		{"欧阳娜娜", "欧阳", "娜娜"},
		{"司马相如", "司马", "相如"},
		{"欧阳", "欧", "阳"},
		{"王", "王", ""},
		{"John O'Brien", "O'Brien", "John"},
		{"María García López", "López", "María García"},
		{"Madonna", "Madonna", ""},
		{"", "", ""},
	}
	for _, c := range cases {
		sn, given := splitName(c.name)
		if sn != c.sn || given != c.given {
			t.Errorf("splitName(%q) = %q, %q; want %q, %q", c.name, sn, given, c.sn, c.given)
		}
	}
}

func TestEscapedRDNsParseBackToTheName(t *testing.T) {
	names := []string{
		`运行控制部`, `A, B + "C" <D>; E \ F`, `#1 first`, ` lead and trail `,
		`a=b`, "nul\x00byte", `Zoë (München)`,
	}
	for _, n := range names {
		dn := "ou=" + escapeRDNValue(n) + ",dc=egret,dc=test"
		d, err := ldap.ParseDN(dn)
		if err != nil {
			t.Errorf("%q: %s does not parse: %v", n, dn, err)
			continue
		}
		if got := d.RDNs[0].Attributes[0].Value; got != n || len(d.RDNs) != 3 {
			t.Errorf("%q: %s parses to %q in %d RDNs", n, dn, got, len(d.RDNs))
		}
	}
}

func TestSiblingRDNsAreDistinctAndStable(t *testing.T) {
	kids := []named{{"0001-aaaaaaaa", "运行控制部"}, {"0002-bbbbbbbb", "运行控制部"}, {"0003-cccccccc", "Ops"}}
	first := assignRDNs(append([]named(nil), kids...), nil, nil)
	if first["0001-aaaaaaaa"] != "运行控制部" || first["0002-bbbbbbbb"] != "运行控制部 [bbbbbbbb]" {
		t.Fatalf("same-named siblings: %v", first)
	}

	// The older one is renamed away: the newer keeps its RDN, which
	// LDAP holds now.
	renamed := []named{{"0001-aaaaaaaa", "运控中心"}, {"0002-bbbbbbbb", "运行控制部"}, {"0003-cccccccc", "Ops"}}
	second := assignRDNs(renamed, nil, first)
	if second["0002-bbbbbbbb"] != first["0002-bbbbbbbb"] || second["0001-aaaaaaaa"] != "运控中心" {
		t.Fatalf("after a sibling's rename: %v", second)
	}

	// A new sibling that differs in case only is a clash to LDAP.
	added := append(renamed, named{"0004-dddddddd", "OPS"})
	third := assignRDNs(added, nil, second)
	if third["0003-cccccccc"] != "Ops" || third["0004-dddddddd"] != "OPS [dddddddd]" {
		t.Fatalf("a sibling differing in case: %v", third)
	}

	// Reserved names at the top of the tree.
	top := assignRDNs([]named{{"0005-eeeeeeee", "groups"}}, []string{GroupsOU, FormerStaffOU}, nil)
	if top["0005-eeeeeeee"] != "groups [eeeeeeee]" {
		t.Fatalf("a unit named like a container: %v", top)
	}
}
