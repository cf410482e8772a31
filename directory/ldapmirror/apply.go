package ldapmirror

import (
	"fmt"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// Actions a pass takes, as reports and metrics name them.
const (
	actAdd    = "add"
	actModify = "modify"
	actMove   = "move"
	actDelete = "delete"
)

// writer applies entries to one connection. Every operation is safe to
// repeat: an add that finds the entry modifies it, a delete of an entry
// that is gone succeeds, a move to where the entry already is does
// nothing. That is what lets a batch be retried whole after a failure
// halfway.
type writer struct {
	conn *ldap.Conn
	base string
}

// upsert makes the server hold want, given what it holds under want's
// id now (nil for nothing), and answers the actions it took.
func (w *writer) upsert(want *Entry, have *current) ([]string, error) {
	var acts []string
	if have == nil {
		err := w.conn.Add(addRequest(want))
		if err == nil {
			return []string{actAdd}, nil
		}
		if !ldap.IsErrorWithCode(err, ldap.LDAPResultEntryAlreadyExists) {
			return nil, fmt.Errorf("ldapmirror: add %s: %w", want.DN, err)
		}
		// Something holds the DN: take it over.
		if have, err = readEntry(w.conn, want.DN); err != nil {
			return nil, err
		}
		if have == nil {
			return nil, fmt.Errorf("ldapmirror: add %s: exists, then vanished", want.DN)
		}
	}

	if have.norm != normDN(want.DN) {
		if err := w.move(have.DN, want.DN); err != nil {
			return nil, err
		}
		acts = append(acts, actMove)
		// The old RDN value went with the move; read what is left.
		var err error
		if have, err = readEntry(w.conn, want.DN); err != nil {
			return nil, err
		}
		if have == nil {
			return nil, fmt.Errorf("ldapmirror: %s moved, then vanished", want.DN)
		}
	}

	if ch := diffAttrs(want.Attrs, have.Attrs); len(ch) > 0 {
		req := ldap.NewModifyRequest(have.DN, nil)
		req.Changes = ch
		if err := w.conn.Modify(req); err != nil {
			return nil, fmt.Errorf("ldapmirror: modify %s: %w", have.DN, err)
		}
		acts = append(acts, actModify)
	}
	return acts, nil
}

// move renames and, where the parent differs, moves an entry with
// everything under it (RFC 4511 §4.9; OpenLDAP's back-mdb moves a whole
// subtree in one operation). An entry already at the target that egret
// does not own is removed first.
func (w *writer) move(from, to string) error {
	rdn, parent := splitDN(to)
	_, oldParent := splitDN(from)
	sup := ""
	if normDN(parent) != normDN(oldParent) {
		sup = parent
	}
	err := w.conn.ModifyDN(ldap.NewModifyDNRequest(from, rdn, true, sup))
	if ldap.IsErrorWithCode(err, ldap.LDAPResultEntryAlreadyExists) {
		occupant, rerr := readEntry(w.conn, to)
		if rerr != nil {
			return rerr
		}
		if occupant != nil && occupant.ID != "" {
			// Another record's entry, about to be moved on by its own
			// change: park it under its id until then.
			ordn, _ := splitDN(occupant.DN)
			attr, _, _ := strings.Cut(ordn, "=")
			park := attr + "=" + escapeRDNValue(occupant.ID)
			if perr := w.conn.ModifyDN(ldap.NewModifyDNRequest(occupant.DN, park, false, "")); perr != nil {
				return fmt.Errorf("ldapmirror: park %s: %w", occupant.DN, perr)
			}
		} else if derr := w.remove(to); derr != nil {
			return derr
		}
		err = w.conn.ModifyDN(ldap.NewModifyDNRequest(from, rdn, true, sup))
	}
	if err != nil {
		return fmt.Errorf("ldapmirror: move %s to %s: %w", from, to, err)
	}
	return nil
}

// remove deletes an entry and whatever is under it. An entry already
// gone is no error.
func (w *writer) remove(dn string) error {
	err := w.conn.Del(ldap.NewDelRequest(dn, nil))
	switch {
	case err == nil, ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject):
		return nil
	case ldap.IsErrorWithCode(err, ldap.LDAPResultNotAllowedOnNonLeaf):
		kids, serr := searchAll(w.conn, dn, ldap.ScopeSingleLevel, "(objectClass=*)", []string{"1.1"})
		if serr != nil {
			return serr
		}
		for _, k := range kids {
			if err := w.remove(k.DN); err != nil {
				return err
			}
		}
		err = w.conn.Del(ldap.NewDelRequest(dn, nil))
		if err == nil || ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
			return nil
		}
	}
	return fmt.Errorf("ldapmirror: delete %s: %w", dn, err)
}

func addRequest(e *Entry) *ldap.AddRequest {
	req := ldap.NewAddRequest(e.DN, nil)
	for _, k := range sortedKeys(e.Attrs) {
		req.Attribute(k, e.Attrs[k])
	}
	return req
}
