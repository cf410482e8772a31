package directory

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Widths of the columns the lifecycle writes, in characters.
const (
	maxNameLen    = 255
	maxOAIDLen    = 64
	maxLoginLen   = 64
	maxPhoneLen   = 64
	maxMobileLen  = 32
	maxAddressLen = 320
	maxLocalLen   = 64
)

// checkText refuses text that the directory should not keep: bytes that
// are not UTF-8, control characters (which break LDIF, logs and mail
// headers), and text longer than its column. Everything else, quotes,
// backslashes, LDAP filter and DN characters included, is data and is
// kept as sent: SQL is parameterised and the LDAP mirror escapes.
//
// encoding/json turns bytes that are not UTF-8, and lone surrogate
// escapes, into U+FFFD, so that character is refused too: nobody names a
// department with it on purpose.
func checkText(field, v string, max int, required bool) error {
	if !utf8.ValidString(v) {
		return fieldErr(field, "is not valid UTF-8")
	}
	for _, r := range v {
		if r == utf8.RuneError {
			return fieldErr(field, "contains U+FFFD, the mark of text that was not valid UTF-8")
		}
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return fieldErr(field, "contains the control character U+%04X", r)
		}
	}
	if required && strings.TrimSpace(v) == "" {
		return fieldErr(field, "is required")
	}
	if n := utf8.RuneCountInString(v); n > max {
		return fieldErr(field, "has %d characters, more than the %d the directory keeps", n, max)
	}
	return nil
}

// checkOAID refuses an OA id the OA could not have sent: the import trims
// ids, and MySQL's collations pad with spaces, so that "d1 " there is
// "d1" while SQLite holds them apart. An id with white space at its ends
// would name one record on one database and two on the other.
func checkOAID(field, v string) error {
	if err := checkText(field, v, maxOAIDLen, false); err != nil {
		return err
	}
	if strings.TrimSpace(v) != v {
		return fieldErr(field, "%q has white space at its ends; OA ids have none", v)
	}
	return nil
}

// LoginKey answers the form under which logins are compared: Unicode
// NFKC (so full-width "ＷａｎｇＷｅｉ" meets "WangWei") and lower case.
func LoginKey(login string) string {
	return strings.ToLower(norm.NFKC.String(login))
}

// checkLogin refuses a login that could not be a mail address's local
// part or an LDAP uid without quoting: letters and digits of any script,
// and ".", "_", "-" between them.
func checkLogin(login string) error {
	if err := checkText("login", login, maxLoginLen, true); err != nil {
		return err
	}
	key := LoginKey(login)
	if n := utf8.RuneCountInString(key); n > maxLoginLen {
		return fieldErr("login", "has %d characters, more than %d", n, maxLoginLen)
	}
	if !plainLocal(key) {
		return fieldErr("login", "%q: want letters, digits and . _ - between them", login)
	}
	return nil
}

// plainLocal reports whether s is letters and digits (any script) joined
// by single ".", "_" or "-": a subset of RFC 5322 §3.2.3 dot-atom text,
// widened to UTF-8 as RFC 6531 §3.3 allows.
func plainLocal(s string) bool {
	if s == "" {
		return false
	}
	prevSep := true
	for _, r := range s {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r):
			prevSep = false
		case r == '.' || r == '_' || r == '-':
			if prevSep {
				return false
			}
			prevSep = true
		default:
			return false
		}
	}
	return !prevSep
}

// NormAddress answers the form in which addresses are kept and compared:
// NFKC and lower case.
func NormAddress(addr string) string {
	return strings.ToLower(norm.NFKC.String(addr))
}

// checkAddress refuses an address egret could not receive mail at, and
// answers it normalised.
func (l *Lifecycle) checkAddress(field, addr string) (string, error) {
	if err := checkText(field, addr, maxAddressLen, true); err != nil {
		return "", err
	}
	a := NormAddress(addr)
	local, domain, ok := strings.Cut(a, "@")
	if !ok || strings.Contains(domain, "@") {
		return "", fieldErr(field, "%q is not an address of the form local@domain", addr)
	}
	if utf8.RuneCountInString(local) > maxLocalLen || !plainLocal(local) {
		return "", fieldErr(field, "%q: want a local part of letters, digits and . _ - between them", addr)
	}
	if l.Domain != "" && domain != strings.ToLower(l.Domain) {
		return "", fieldErr(field, "%q is not on the mail domain %s", addr, l.Domain)
	}
	if l.Domain == "" && !validDomain(domain) {
		return "", fieldErr(field, "%q: the domain is not a host name", addr)
	}
	return a, nil
}

func validDomain(d string) bool {
	if d == "" || len(d) > 253 {
		return false
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r == '-' || unicode.IsLetter(r) || unicode.IsDigit(r)) {
				return false
			}
		}
	}
	return true
}

// checkPhone refuses a work phone that is not a phone number's usual
// characters.
func checkPhone(field, v string) error {
	if err := checkText(field, v, maxPhoneLen, false); err != nil {
		return err
	}
	for _, r := range v {
		if !(r >= '0' && r <= '9' || strings.ContainsRune(" +-()#*,.;/x", r)) {
			return fieldErr(field, "%q: want digits, spaces and + - ( ) # * , . ; / x", v)
		}
	}
	return nil
}

// checkMobile checks the raw mobile number and its normalised digits.
func checkMobile(raw, digits string) error {
	if err := checkPhone("mobile", raw); err != nil {
		return err
	}
	if len(digits) > maxMobileLen {
		return fieldErr("mobile", "has %d digits, more than %d", len(digits), maxMobileLen)
	}
	if raw != "" && digits == "" {
		return fieldErr("mobile", "%q has no digits", raw)
	}
	return nil
}
