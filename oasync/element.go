package oasync

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// EKP element types.
const (
	typeOrg    = "org"
	typeDept   = "dept"
	typePost   = "post"
	typePerson = "person"
	typeGroup  = "group"
)

// element is one EKP org element, as far as egret reads it. Fields EKP
// sends and egret has no use for (lunid, hierarchyId, rtx, ...) are
// dropped by the decoder.
type element struct {
	// Index is the element's position in the input array.
	Index int `json:"-"`
	// broken marks an element that could not be decoded; a problem
	// names it, and later checks pass it over.
	broken bool

	ID        scalar `json:"id"`
	Type      string `json:"type"`
	Name      string `json:"name"`
	Parent    scalar `json:"parent"`
	No        scalar `json:"no"`
	Order     scalar `json:"order"`
	Available *bool  `json:"isAvailable"`
	AlterTime string `json:"alterTime"`

	// Person fields. loginNameLower is not read: egret lower-cases the
	// login itself so that one rule decides what collides.
	LoginName scalar   `json:"loginName"`
	NickName  string   `json:"nickName"`
	Email     string   `json:"email"`
	MobileNo  scalar   `json:"mobileNo"`
	WorkPhone scalar   `json:"workPhone"`
	Sex       string   `json:"sex"`
	Posts     []scalar `json:"posts"`

	// Persons lists the holders of a post.
	Persons []scalar `json:"persons"`
	// Members lists a group's members: people, units or posts.
	Members []scalar `json:"members"`
}

// available reports the element's isAvailable, which EKP omits only for
// elements that have never been disabled.
func (el *element) available() bool {
	return el.Available == nil || *el.Available
}

// isUnit reports whether the element becomes an org unit.
func (el *element) isUnit() bool {
	return el.Type == typeOrg || el.Type == typeDept
}

// tidy trims the text fields, so that " 王伟" and "王伟" compare equal.
func (el *element) tidy() {
	el.ID = scalar(strings.TrimSpace(string(el.ID)))
	el.Type = strings.TrimSpace(el.Type)
	el.Name = strings.TrimSpace(el.Name)
	el.Parent = scalar(strings.TrimSpace(string(el.Parent)))
	el.No = scalar(strings.TrimSpace(string(el.No)))
	el.AlterTime = strings.TrimSpace(el.AlterTime)
	el.LoginName = scalar(strings.TrimSpace(string(el.LoginName)))
	el.NickName = strings.TrimSpace(el.NickName)
	el.Email = strings.TrimSpace(el.Email)
	el.MobileNo = scalar(strings.TrimSpace(string(el.MobileNo)))
	el.WorkPhone = scalar(strings.TrimSpace(string(el.WorkPhone)))
	el.Sex = strings.TrimSpace(el.Sex)
}

// scalar is a text field that EKP sends as a string, though some of its
// versions send numbers for ids and order, and null for empty.
type scalar string

// UnmarshalJSON takes a string, a number or null.
func (s *scalar) UnmarshalJSON(b []byte) error {
	switch {
	case bytes.Equal(b, []byte("null")):
		*s = ""
		return nil
	case len(b) > 0 && b[0] == '"':
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = scalar(v)
		return nil
	case len(b) > 0 && (b[0] == '-' || b[0] >= '0' && b[0] <= '9'):
		*s = scalar(b)
		return nil
	}
	return fmt.Errorf("want a string or a number, got %s", truncate(string(b), 20))
}

// strs converts a list of scalars, trimmed and without empties.
func strs(in []scalar) []string {
	out := make([]string, 0, len(in))
	for _, v := range in {
		if t := strings.TrimSpace(string(v)); t != "" {
			out = append(out, t)
		}
	}
	return out
}

// atoi reads EKP's order, "" being 0.
func atoi(s scalar) (int, error) {
	t := strings.TrimSpace(string(s))
	if t == "" {
		return 0, nil
	}
	return strconv.Atoi(t)
}

// truncate shortens s to at most n runes for messages.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
