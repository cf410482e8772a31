package ldapmirror

import (
	"fmt"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Config says where the directory server is and who egret binds as.
type Config struct {
	// URL is "ldap://HOST:PORT" or "ldaps://HOST:PORT".
	URL      string
	BindDN   string
	Password string
	// BaseDN is the entry under which egret keeps its tree. Everything
	// below it is egret's: reconcile removes what egret did not put
	// there.
	BaseDN string
	// Conns is the number of connections a full pass adds entries
	// over; zero means 4.
	Conns int
}

func (c Config) conns() int {
	if c.Conns > 0 {
		return c.Conns
	}
	return 4
}

// dial opens and binds one connection.
func (c Config) dial() (*ldap.Conn, error) {
	conn, err := ldap.DialURL(c.URL,
		ldap.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}))
	if err != nil {
		return nil, fmt.Errorf("ldapmirror: connect %s: %w", c.URL, err)
	}
	conn.SetTimeout(30 * time.Second)
	if c.BindDN != "" {
		if err := conn.Bind(c.BindDN, c.Password); err != nil {
			conn.Close()
			return nil, fmt.Errorf("ldapmirror: bind as %s: %w", c.BindDN, err)
		}
	}
	return conn, nil
}

// current is an entry as the server holds it.
type current struct {
	DN    string
	norm  string
	ID    string
	Attrs map[string][]string // keys in lower case
}

func fromLDAP(e *ldap.Entry) *current {
	c := &current{DN: e.DN, norm: normDN(e.DN), Attrs: map[string][]string{}}
	for _, a := range e.Attributes {
		k := strings.ToLower(a.Name)
		c.Attrs[k] = append(c.Attrs[k], a.Values...)
	}
	if v := c.Attrs["uniqueidentifier"]; len(v) > 0 {
		c.ID = v[0]
	}
	return c
}

// normDN answers the form in which the mirror compares DNs: attribute
// types and values in lower case, values escaped one way (RFC 4514
// allows several spellings of one DN). A string that does not parse is
// compared as it is, lower-cased.
func normDN(dn string) string {
	d, err := ldap.ParseDN(dn)
	if err != nil {
		return strings.ToLower(dn)
	}
	parts := make([]string, len(d.RDNs))
	for i, r := range d.RDNs {
		avas := make([]string, len(r.Attributes))
		for j, a := range r.Attributes {
			avas[j] = strings.ToLower(a.Type) + "=" + escapeRDNValue(rdnKey(a.Value))
		}
		sort.Strings(avas)
		parts[i] = strings.Join(avas, "+")
	}
	return strings.Join(parts, ",")
}

// splitDN answers the first RDN of dn and the DN of its parent.
func splitDN(dn string) (rdn, parent string) {
	for i := 0; i < len(dn); i++ {
		switch dn[i] {
		case '\\':
			i++
		case ',':
			return dn[:i], dn[i+1:]
		}
	}
	return dn, ""
}

// searchAll reads the entries under base that filter selects, in pages
// so that a server's size limit for the bind DN does not cut the
// answer.
func searchAll(conn *ldap.Conn, base string, scope int, filter string, attrs []string) ([]*ldap.Entry, error) {
	req := ldap.NewSearchRequest(base, scope, ldap.NeverDerefAliases, 0, 0, false,
		filter, attrs, nil)
	res, err := conn.SearchWithPaging(req, 1000)
	if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ldapmirror: search %s %s: %w", base, filter, err)
	}
	return res.Entries, nil
}

// findByID answers the entries under base whose uniqueIdentifier is id;
// more than one is a copy made by hand or a crash.
func findByID(conn *ldap.Conn, base, id string) ([]*current, error) {
	// RFC 4515 §3: the value is escaped, so an id is never a filter.
	f := "(uniqueIdentifier=" + ldap.EscapeFilter(id) + ")"
	es, err := searchAll(conn, base, ldap.ScopeWholeSubtree, f, []string{"*"})
	if err != nil {
		return nil, err
	}
	out := make([]*current, len(es))
	for i, e := range es {
		out[i] = fromLDAP(e)
	}
	return out, nil
}

// readEntry answers the entry at dn, or nil when there is none.
func readEntry(conn *ldap.Conn, dn string) (*current, error) {
	es, err := searchAll(conn, dn, ldap.ScopeBaseObject, "(objectClass=*)", []string{"*"})
	if err != nil || len(es) == 0 {
		return nil, err
	}
	return fromLDAP(es[0]), nil
}

// diffAttrs answers the modifications that turn have into want: a
// replace for each attribute whose values differ, a delete for each one
// want lacks. Values are compared as sets; member DNs by normDN.
func diffAttrs(want map[string][]string, have map[string][]string) []ldap.Change {
	var out []ldap.Change
	names := make([]string, 0, len(want))
	for k := range want {
		names = append(names, k)
	}
	sort.Strings(names)
	wantLower := map[string]bool{}
	for _, k := range names {
		wantLower[strings.ToLower(k)] = true
		if !sameValues(k, want[k], have[strings.ToLower(k)]) {
			out = append(out, ldap.Change{Operation: ldap.ReplaceAttribute,
				Modification: ldap.PartialAttribute{Type: k, Vals: want[k]}})
		}
	}
	var extra []string
	for k := range have {
		if !wantLower[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	for _, k := range extra {
		out = append(out, ldap.Change{Operation: ldap.DeleteAttribute,
			Modification: ldap.PartialAttribute{Type: k}})
	}
	return out
}

func sameValues(attr string, a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	key := func(v string) string { return v }
	switch strings.ToLower(attr) {
	case "member":
		key = normDN
	case "objectclass":
		key = strings.ToLower
	}
	m := map[string]int{}
	for _, v := range a {
		m[key(v)]++
	}
	for _, v := range b {
		m[key(v)]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}
