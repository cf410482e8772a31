package main

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestBackFactsTakesOnlyFronts(t *testing.T) {
	b := &backFacts{secret: "a-secret-of-twenty-chars",
		sources: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	cases := []struct {
		name, from, auth string
		want             bool
	}{
		{"a front with the secret is let in", "10.1.2.3:5000", "Bearer a-secret-of-twenty-chars", true},
		{"a front with another secret is refused", "10.1.2.3:5000", "Bearer a-secret-of-twenty-charz", false},
		{"a front without a secret is refused", "10.1.2.3:5000", "", false},
		{"the secret from outside the sources is refused", "192.0.2.7:5000", "Bearer a-secret-of-twenty-chars", false},
		{"a mapped address inside the sources is let in", "[::ffff:10.9.9.9]:5000", "Bearer a-secret-of-twenty-chars", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", factsPath+"acct?latest=1", nil)
			r.RemoteAddr = c.from
			if c.auth != "" {
				r.Header.Set("Authorization", c.auth)
			}
			if got := b.allowed(r); got != c.want {
				t.Fatalf("allowed = %v, want %v", got, c.want)
			}
		})
	}
}
