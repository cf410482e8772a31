package dkim_test

import (
	"os"
	"strings"
	"testing"

	"github.com/egretair/egret/mailcore/dkim"
)

func TestKeygenWritesAPrivateKeyAndItsRecord(t *testing.T) {
	for _, algo := range []string{dkim.RSA, dkim.Ed25519} {
		t.Run(algo, func(t *testing.T) {
			dir := t.TempDir()
			k, err := dkim.Keygen(dir, "EgretAir.example", "", algo)
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(k.Path)
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("key file %s: %v, mode %v, want 0600", k.Path, err, fi.Mode())
			}
			if want := dir + "/egretair.example." + dkim.DefaultSelector + ".key"; k.Path != want {
				t.Errorf("key at %s, want %s", k.Path, want)
			}
			txt, err := k.TXT()
			if err != nil || !strings.HasPrefix(txt, "v=DKIM1; k="+algo+"; p=") {
				t.Errorf("TXT %q (%v)", txt, err)
			}
			if k.RecordName() != "egret._domainkey.egretair.example" {
				t.Errorf("record name %s", k.RecordName())
			}
			if _, err := dkim.Keygen(dir, "egretair.example", "", algo); err == nil {
				t.Error("a second keygen replaced the key")
			}
			keys, err := dkim.Load(dir)
			if err != nil || keys.For("EGRETAIR.example") == nil || keys.For("other.example") != nil {
				t.Fatalf("Load: %v; keys for the domain only expected", err)
			}
		})
	}
}
