package ldapmirror

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// compoundSurnames are the two-character Chinese surnames common enough
// to meet in a staff list. A name that starts with one of them has it as
// its surname; any other Chinese name has its first character.
var compoundSurnames = map[string]bool{
	"欧阳": true, "司马": true, "诸葛": true, "上官": true, "东方": true,
	"皇甫": true, "尉迟": true, "公孙": true, "慕容": true, "长孙": true,
	"宇文": true, "司徒": true, "令狐": true, "夏侯": true, "轩辕": true,
	"端木": true, "独孤": true, "南宫": true, "西门": true, "澹台": true,
	"钟离": true, "闻人": true, "万俟": true, "呼延": true, "赫连": true,
	"司空": true, "太史": true, "申屠": true, "公冶": true, "濮阳": true,
}

// splitName answers the surname (sn) and given name (givenName) of a
// display name. A name in Chinese characters has the surname first: its
// first character, or two for a compound surname. A name in Latin
// letters is taken in Western order, the last word being the surname. A
// single word is all surname, since sn is required and givenName is not.
// Logins are never used: a pinyin login is not a name.
func splitName(name string) (sn, given string) {
	name = strings.TrimSpace(name)
	if name == "" {
		return "", ""
	}
	first, _ := utf8.DecodeRuneInString(name)
	if unicode.Is(unicode.Han, first) && !strings.ContainsAny(name, " \u3000·") {
		runes := []rune(name)
		if len(runes) >= 3 && compoundSurnames[string(runes[:2])] {
			return string(runes[:2]), string(runes[2:])
		}
		if len(runes) == 1 {
			return name, ""
		}
		return string(runes[:1]), string(runes[1:])
	}
	words := strings.Fields(name)
	if len(words) == 1 {
		return name, ""
	}
	return words[len(words)-1], strings.Join(words[:len(words)-1], " ")
}

// escapeRDNValue escapes an attribute value for a DN string as RFC 4514
// §2.4 requires: a backslash before '"', '+', ',', ';', '<', '>' and
// '\', before a leading '#' or space and a trailing space, and NUL as
// "\00". Everything else, UTF-8 included, is written as it is.
func escapeRDNValue(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == 0:
			b.WriteString(`\00`)
			continue
		case c == '"' || c == '+' || c == ',' || c == ';' ||
			c == '<' || c == '>' || c == '\\':
			b.WriteByte('\\')
		case (c == '#' || c == ' ') && i == 0:
			b.WriteByte('\\')
		case c == ' ' && i == len(v)-1:
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return b.String()
}

// rdnKey is the form in which two RDN values are the same to the
// server: ou, cn and uid match with caseIgnoreMatch, which folds case
// and squeezes runs of spaces (RFC 4518 §2.6.1).
func rdnKey(v string) string {
	return strings.ToLower(strings.Join(strings.Fields(v), " "))
}

// printableTelephone reports whether v may be a telephoneNumber: RFC
// 4517 §3.3.31 restricts it to PrintableString characters (§3.2). OA
// numbers such as "6688转201" are not, and are left out of the entry
// rather than failing it.
func printableTelephone(v string) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte(" '()+,-./:=?", c) >= 0
		if !ok {
			return false
		}
	}
	return true
}
