package directory_test

import (
	"strings"
	"testing"

	"github.com/egretair/egret/directory"
)

func TestPasswordHashes(t *testing.T) {
	h1, err := directory.HashPassword("机长 captain 7")
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := directory.HashPassword("机长 captain 7")
	if !strings.HasPrefix(h1, "$argon2id$v=19$m=19456,t=2,p=1$") || h1 == h2 {
		t.Fatalf("hashes %q and %q: want salted argon2id in PHC form", h1, h2)
	}
	cases := []struct {
		name, hash, password string
		ok, fails            bool
	}{
		{"the right password matches", h1, "机长 captain 7", true, false},
		{"a wrong password does not", h1, "机长 captain 8", false, false},
		{"no hash matches nothing", "", "", false, false},
		{"a bcrypt hash is not taken for argon2id", "$2a$10$abcdefghijklmnopqrstuv", "x", false, true},
		{"a hash with a cut-off key is refused", h1[:strings.LastIndex(h1, "$")+1], "x", false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ok, err := directory.CheckPassword(c.hash, c.password)
			if ok != c.ok || (err != nil) != c.fails {
				t.Fatalf("got %v, %v", ok, err)
			}
		})
	}
}

// BenchmarkCheckPassword measures what one login costs in CPU: the price
// of argon2id at egret's parameters.
func BenchmarkCheckPassword(b *testing.B) {
	h, _ := directory.HashPassword("机长 captain 7")
	for b.Loop() {
		directory.CheckPassword(h, "机长 captain 7")
	}
}
