package oasync

import (
	"strings"
	"testing"
)

func TestMobileNumbersAreReducedToDigits(t *testing.T) {
	cases := []struct{ name, raw, want string }{
		{"a plain number stays as it is", "13025707419", "13025707419"},
		{"the +86 prefix and spaces go", "+86 130 2570 7419", "13025707419"},
		{"the 0086 prefix and dashes go", "0086-130-2570-7419", "13025707419"},
		{"an 86 prefix set off by a space goes", "86 13025707419", "13025707419"},
		{"an 86 prefix run into the number goes", "8613025707419", "13025707419"},
		{"a landline keeps its area code", "0592-5764460", "05925764460"},
		{"another country keeps its code", "+852 9123 4567", "85291234567"},
		{"nothing stays nothing", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := normMobile(c.raw); got != c.want {
				t.Errorf("normMobile(%q) = %q, want %q", c.raw, got, c.want)
			}
		})
	}
}

func TestAlterTimesAreMadeFixedWidth(t *testing.T) {
	cases := []struct {
		name, in, want string
		ok             bool
	}{
		{"EKP's own form is kept", "2026-11-30 08:06:10.104", "2026-11-30 08:06:10.104", true},
		{"short milliseconds are padded", "2026-11-30 08:06:10.1", "2026-11-30 08:06:10.100", true},
		{"no milliseconds gives zeros", "2026-11-30 08:06:10", "2026-11-30 08:06:10.000", true},
		{"a T separator is accepted", "2026-11-30T08:06:10.104", "2026-11-30 08:06:10.104", true},
		{"none is none", "", "", true},
		{"garbage is refused", "yesterday", "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := normAlterTime(c.in)
			if got != c.want || ok != c.ok {
				t.Errorf("normAlterTime(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
			}
		})
	}
}

func TestTheMailRule(t *testing.T) {
	cases := []struct{ name, email, login, addr, alt string }{
		{"an email on the domain is the address", "Wang.Wei@EgretAir.Example", "wangwei",
			"wang.wei@egretair.example", ""},
		{"an email elsewhere becomes the alternative", "wangwei@163.example", "wangwei",
			"wangwei@egretair.example", "wangwei@163.example"},
		{"a subdomain is elsewhere", "wangwei@ops.egretair.example", "wangwei",
			"wangwei@egretair.example", "wangwei@ops.egretair.example"},
		{"no email gives the login", "", "wangwei", "wangwei@egretair.example", ""},
		{"a broken email is ignored", "wangwei", "wangwei", "wangwei@egretair.example", ""},
		{"a full-width email on the domain is folded", "ＷａｎｇＷｅｉ＠egretair.example", "wangwei",
			"wangwei@egretair.example", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			addr, alt := mailRule(c.email, c.login, "egretair.example")
			if addr != c.addr || alt != c.alt {
				t.Errorf("got %q, %q; want %q, %q", addr, alt, c.addr, c.alt)
			}
		})
	}
}

func TestUnquoteKeepsWhatJSONWouldReplace(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"plain text", `"abc"`, "abc"},
		{"escapes", `"a\"b\\c\/d\n\u00e9\u4e2d"`, "a\"b\\c/d\né中"},
		{"a surrogate pair", `"\ud83d\ude00"`, "😀"},
		{"a byte that is not UTF-8", "\"a\xffb\"", "a\xffb"},
		{"a lone surrogate", `"a\ud800b"`, "a\xed\xa0\x80b"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := string(unquote([]byte(c.in))); got != c.want {
				t.Errorf("unquote(%s) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

func TestProblemsQuoteLongValuesShort(t *testing.T) {
	long := strings.Repeat("航", 100000)
	ps := &problems{}
	ps.add(&element{Index: 3, ID: scalar(long), Type: "dept", Name: long}, "name", "too long")
	err := ps.err()
	if len(err.Error()) > 1000 {
		t.Fatalf("the refusal of a 100,000-character name is %d bytes long", len(err.Error()))
	}
	p := err.(*InvalidError).Problems[0]
	if p.Index != 3 || !strings.HasPrefix(p.Name, "航航") || !strings.HasSuffix(p.Name, "…") {
		t.Fatalf("problem %+v: want the element named, its name cut short", p)
	}
}
