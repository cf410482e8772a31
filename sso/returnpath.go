package sso

import (
	"errors"
	"net/url"
	"path"
	"strings"
)

// MailRoot is where the web mailbox is served; return paths stay below.
const MailRoot = "/mail/"

// ErrBadReturnPath refuses a return path outside the web mailbox.
var ErrBadReturnPath = errors.New("sso: return path must be a path under /mail/")

// CleanReturnPath checks where a login may send the browser afterwards:
// a relative reference (RFC 3986 §4.2) to a path under /mail/ with no
// dot segments, or "" for the inbox. Anything that a browser could read
// as another origin ("//host", "/\host", a scheme) is refused, so a
// login link is never an open redirect.
func CleanReturnPath(p string) (string, error) {
	if p == "" {
		return MailRoot, nil
	}
	if len(p) > 512 || !strings.HasPrefix(p, MailRoot) ||
		strings.ContainsAny(p, "\\#") || strings.HasPrefix(p, "//") {
		return "", ErrBadReturnPath
	}
	for i := 0; i < len(p); i++ {
		if p[i] < 0x21 || p[i] == 0x7f {
			return "", ErrBadReturnPath
		}
	}
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return "", ErrBadReturnPath
	}
	// "/mail/../api" is no path under /mail/, whatever its prefix.
	clean := path.Clean(u.Path)
	if strings.HasSuffix(u.Path, "/") && clean != "/" {
		clean += "/"
	}
	if clean != u.Path || !strings.HasPrefix(clean, MailRoot) {
		return "", ErrBadReturnPath
	}
	return p, nil
}
