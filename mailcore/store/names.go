package store

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Delim is the hierarchy separator of mailbox names.
const Delim = '/'

// Inbox is the name of the mailbox deliveries go to.
const Inbox = "INBOX"

// maxEscapedName keeps a mailbox folder name below the 255-byte limit of
// common file systems, with room for temporary suffixes.
//
// Not yet: longer mailbox names are refused; no client has needed one.
const maxEscapedName = 200

// specialUse gives the RFC 6154 attribute of the default mailboxes.
var specialUse = map[string]string{
	"Sent":   `\Sent`,
	"Drafts": `\Drafts`,
	"Trash":  `\Trash`,
}

// defaultMailboxes exist in every account.
var defaultMailboxes = []string{Inbox, "Sent", "Drafts", "Trash"}

// CleanName checks a mailbox name and answers its canonical form: "INBOX"
// in any case becomes "INBOX" (RFC 3501 §5.1), also as the first level of
// a hierarchy.
func CleanName(name string) (string, error) {
	if name == "" || strings.HasPrefix(name, "/") ||
		strings.HasSuffix(name, "/") || strings.Contains(name, "//") {
		return "", fmt.Errorf("%w: %q", ErrBadName, name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || r == '*' || r == '%' {
			return "", fmt.Errorf("%w: %q", ErrBadName, name)
		}
	}
	first, rest, nested := strings.Cut(name, "/")
	if strings.EqualFold(first, Inbox) {
		name = Inbox
		if nested {
			name += "/" + rest
		}
	}
	if len(escapeName(name)) > maxEscapedName {
		return "", fmt.Errorf("%w: name too long", ErrBadName)
	}
	return name, nil
}

// escapeName turns a mailbox name or account id into one file name.
func escapeName(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == '/' || c == '%' || c < 0x20 || c == 0x7f ||
			(i == 0 && c == '.') {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// unescapeName reverses escapeName.
func unescapeName(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("store: bad escape in %q", s)
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", fmt.Errorf("store: bad escape in %q: %w", s, err)
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), nil
}

// System flags (RFC 9051 §2.3.2) and the keyword with a Maildir letter.
const (
	FlagSeen      = `\Seen`
	FlagAnswered  = `\Answered`
	FlagFlagged   = `\Flagged`
	FlagDeleted   = `\Deleted`
	FlagDraft     = `\Draft`
	FlagForwarded = "$Forwarded"
)

// maildirFlags maps Maildir info letters, in the ASCII order the info
// part must use, to IMAP flags.
var maildirFlags = []struct {
	letter byte
	flag   string
}{
	{'D', FlagDraft},
	{'F', FlagFlagged},
	{'P', FlagForwarded},
	{'R', FlagAnswered},
	{'S', FlagSeen},
	{'T', FlagDeleted},
}

// flagSet is what a message is marked with: Maildir letters for the
// flags that have one, keywords for the rest.
type flagSet struct {
	letters  string
	keywords []string
}

// has reports whether the set holds flag, compared without case.
func (f flagSet) has(flag string) bool {
	for _, m := range maildirFlags {
		if strings.EqualFold(m.flag, flag) {
			return strings.IndexByte(f.letters, m.letter) >= 0
		}
	}
	return slices.ContainsFunc(f.keywords, func(k string) bool {
		return strings.EqualFold(k, flag)
	})
}

// list answers the flags as IMAP names, system flags first.
func (f flagSet) list() []string {
	var l []string
	for _, m := range maildirFlags {
		if strings.IndexByte(f.letters, m.letter) >= 0 {
			l = append(l, m.flag)
		}
	}
	return append(l, f.keywords...)
}

// FlagOp says how StoreFlags combines the given flags with the old ones.
type FlagOp int

// Flag operations, as in the IMAP STORE command (RFC 9051 §6.4.6).
const (
	FlagsSet FlagOp = iota
	FlagsAdd
	FlagsRemove
)

// apply answers the flag set after op with flags. \Recent and unknown
// system flags are ignored: they cannot be stored.
func (f flagSet) apply(op FlagOp, flags []string) flagSet {
	var in flagSet
	for _, fl := range flags {
		letter := byte(0)
		for _, m := range maildirFlags {
			if strings.EqualFold(m.flag, fl) {
				letter = m.letter
			}
		}
		switch {
		case letter != 0:
			if strings.IndexByte(in.letters, letter) < 0 {
				in.letters += string(letter)
			}
		case strings.HasPrefix(fl, `\`) || fl == "":
		case !in.has(fl):
			in.keywords = append(in.keywords, fl)
		}
	}

	var out flagSet
	switch op {
	case FlagsSet:
		out = in
	case FlagsAdd:
		out.letters = f.letters + in.letters
		out.keywords = slices.Clone(f.keywords)
		for _, k := range in.keywords {
			if !f.has(k) {
				out.keywords = append(out.keywords, k)
			}
		}
	case FlagsRemove:
		for i := 0; i < len(f.letters); i++ {
			if strings.IndexByte(in.letters, f.letters[i]) < 0 {
				out.letters += string(f.letters[i])
			}
		}
		for _, k := range f.keywords {
			if !in.has(k) {
				out.keywords = append(out.keywords, k)
			}
		}
	}
	out.letters = sortLetters(out.letters)
	return out
}

// sortLetters orders and deduplicates Maildir info letters.
func sortLetters(s string) string {
	var b []byte
	for _, m := range maildirFlags {
		if strings.IndexByte(s, m.letter) >= 0 {
			b = append(b, m.letter)
		}
	}
	return string(b)
}

// equal reports whether two flag sets hold the same flags.
func (f flagSet) equal(g flagSet) bool {
	if f.letters != g.letters || len(f.keywords) != len(g.keywords) {
		return false
	}
	for _, k := range f.keywords {
		if !g.has(k) {
			return false
		}
	}
	return true
}

// fileName describes a message file's name.
type fileName struct {
	uid    uint32
	date   time.Time
	unique string
	size   int64
	// validity is the mailbox's UIDVALIDITY when the file got its
	// UID; zero in names written before it was recorded.
	validity uint32
	info     bool   // the name has a ":2," part (the file is in cur/)
	flags    string // Maildir info letters
}

// String formats the name as described in the package comment.
func (n fileName) String() string {
	s := fmt.Sprintf("U%d.%d.%s,S=%d",
		n.uid, n.date.Unix(), n.unique, n.size)
	if n.validity != 0 {
		s += ",V=" + strconv.FormatUint(uint64(n.validity), 10)
	}
	if n.info {
		s += ":2," + n.flags
	}
	return s
}

// parseFileName reads a name written by String.
func parseFileName(s string) (fileName, bool) {
	var n fileName
	base, info, hasInfo := strings.Cut(s, ":2,")
	n.info, n.flags = hasInfo, sortLetters(info)
	base, size, ok := strings.Cut(base, ",S=")
	if !ok || !strings.HasPrefix(base, "U") {
		return n, false
	}
	if sz, v, ok := strings.Cut(size, ",V="); ok {
		validity, err := strconv.ParseUint(v, 10, 32)
		if err != nil || validity == 0 {
			return n, false
		}
		size, n.validity = sz, uint32(validity)
	}
	parts := strings.Split(base[1:], ".")
	if len(parts) != 3 {
		return n, false
	}
	uid, err1 := strconv.ParseUint(parts[0], 10, 32)
	sec, err2 := strconv.ParseInt(parts[1], 10, 64)
	sz, err3 := strconv.ParseInt(size, 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || uid == 0 {
		return n, false
	}
	n.uid, n.date, n.unique, n.size =
		uint32(uid), time.Unix(sec, 0), parts[2], sz
	return n, true
}

// uniquePart makes a delivery id safe for a file name. Letters, digits
// and '-' stay; every other byte, '_' included, is written as _XX, so two
// different ids never share a file name part: a shared part would make
// the second delivery look like a duplicate of the first and drop it. An
// id whose part would exceed maxUniqueID is replaced by a SHA-256 digest,
// marked "_h", which no escape produces.
func uniquePart(prefix, id string) string {
	b := []byte(prefix)
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z',
			c >= '0' && c <= '9', c == '-':
			b = append(b, c)
		default:
			b = append(b, '_', hexDigits[c>>4], hexDigits[c&15])
		}
	}
	if len(b)-len(prefix) > maxUniqueID {
		sum := sha256.Sum256([]byte(id))
		return prefix + "_h" + hex.EncodeToString(sum[:])
	}
	return string(b)
}

// maxUniqueID bounds the delivery id part of a file name, well inside
// the 255 bytes a file name may have.
const maxUniqueID = 96

const hexDigits = "0123456789ABCDEF"
