package oasync

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/egretair/egret/directory"
)

// alterTimeLayout is how OA alter times are stored: fixed width, so that
// comparing two as strings compares them as times.
const alterTimeLayout = "2006-01-02 15:04:05.000"

// alterTimeInputs are the forms EKP has been seen to send.
var alterTimeInputs = []string{
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04",
	"2006-01-02",
}

// normAlterTime answers an alter time in alterTimeLayout, "" for none,
// and false when s is not a time.
func normAlterTime(s string) (string, bool) {
	if s == "" {
		return "", true
	}
	if len(s) == len(alterTimeLayout) && s[10] == ' ' && s[19] == '.' {
		if _, err := time.Parse(alterTimeLayout, s); err == nil {
			return s, true
		}
	}
	for _, layout := range alterTimeInputs {
		if t, err := time.Parse(layout, s); err == nil {
			return t.Format(alterTimeLayout), true
		}
	}
	return "", false
}

// maxAhead is how far past this server's clock an alterTime may lie and
// still be kept. EKP writes local time without a zone, and no zone is
// more than 14 hours from UTC; a day leaves room for clock skew too. A
// time further on is a wrong clock or a typing error, and kept it would
// make every later change of the record look stale, and move the pull
// connector's cursor past every row still to come.
const maxAhead = 24 * time.Hour

// aheadOfClock reports whether an alter time in alterTimeLayout lies more
// than maxAhead past now.
func aheadOfClock(t string, now time.Time) bool {
	return t > now.UTC().Add(maxAhead).Format(alterTimeLayout)
}

// normMobile reduces a Chinese mobile number to its digits: "+86 130 2570
// 7419", "0086-13025707419", "86 13025707419" and "13025707419" all give
// "13025707419". Numbers of other countries keep their country code,
// without the "+".
func normMobile(raw string) string {
	s := strings.TrimSpace(raw)
	plus := strings.HasPrefix(s, "+")
	// "86 130..." with a separator after the 86 is a country prefix too;
	// "86130..." is caught below by its length.
	spaced := len(s) > 2 && s[:2] == "86" && !isDigit(s[2])

	digits := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			digits = append(digits, s[i])
		}
	}
	d := string(digits)
	switch {
	case plus && strings.HasPrefix(d, "86"), spaced:
		d = d[2:]
	case strings.HasPrefix(d, "0086"):
		d = d[4:]
	case len(d) == 13 && strings.HasPrefix(d, "861"):
		d = d[2:]
	}
	return d
}

// NormMobile is normMobile for other packages: the lifecycle API keeps
// numbers in the form the import does.
func NormMobile(raw string) string { return normMobile(raw) }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// loginKey answers the form in which logins are kept in login_lower and
// compared: Unicode NFKC (UAX #15), so that a full-width "ＷａｎｇＷｅｉ"
// meets "WangWei", then lower case. The lifecycle API compares logins
// the same way; a look-alike login would give a look-alike address.
func loginKey(login string) string {
	return strings.ToLower(norm.NFKC.String(login))
}

// mailRule answers the address the OA's data gives a person, and their
// alternative address: the OA email when it is on the mail domain, else
// the login (as loginKey gives it) at the domain, with an email on
// another domain kept as the alternative. The address is in Unicode NFKC
// and lower case, the form in which the directory keeps and compares
// addresses, so that a full-width email or login cannot make a
// look-alike of an address someone holds; the alternative is only lower
// case, as the OA wrote it.
func mailRule(email, loginKey, domain string) (address, alt string) {
	folded := directory.NormAddress(email)
	local, host, ok := strings.Cut(folded, "@")
	if ok && local != "" && host == domain {
		return folded, ""
	}
	lower := strings.ToLower(email)
	if local, host, ok := strings.Cut(lower, "@"); ok && local != "" && host != "" {
		alt = lower
	}
	return loginKey + "@" + domain, alt
}

// validLocalPart reports whether s may stand before the "@" of an address
// unquoted: RFC 5322 §3.2.3 dot-atom text, widened to UTF-8 as RFC 6531
// §3.3 allows, so that a login in Chinese is not refused.
func validLocalPart(s string) bool {
	if s == "" || len(s) > 64 || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("!#$%&'*+-/=?^_`{|}~.", r):
		case r >= 0x80 && (unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.IsMark(r)):
		default:
			return false
		}
	}
	return true
}
