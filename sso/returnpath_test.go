package sso

import "testing"

func TestReturnPathsStayInTheMailbox(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
	}{
		{"", "/mail/"},
		{"/mail/", "/mail/"},
		{"/mail/read?box=INBOX&uid=3", "/mail/read?box=INBOX&uid=3"},
		{"//evil.example/", ""},
		{"https://evil.example/mail/", ""},
		{"/mail/../api/v1/users", ""},
		{"/mail/./x", ""},
		{"/mail\\evil", ""},
		{"/\\evil.example/mail/", ""},
		{"/api/v1/users", ""},
		{"/mail/\r\nSet-Cookie: x", ""},
		{"/mail/#frag", ""},
		{"javascript:alert(1)", ""},
	} {
		got, err := CleanReturnPath(tc.in)
		if got != tc.want || (tc.want == "") != (err != nil) {
			t.Errorf("CleanReturnPath(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
