package tlsconf

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestSelfSignedIsCreatedOnceAndReused(t *testing.T) {
	dir := t.TempDir()
	first, err := LoadOrCreate("", "", dir, "mail.egretair.example")
	if err != nil {
		t.Fatal(err)
	}
	keyInfo, err := os.Stat(filepath.Join(dir, "tls", SelfSignedKey))
	if err != nil {
		t.Fatal(err)
	}
	if mode := keyInfo.Mode().Perm(); mode != 0o600 {
		t.Errorf("key file mode = %o, want 600", mode)
	}

	leaf, err := x509.ParseCertificate(first.Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"mail.egretair.example", "localhost"} {
		if !slices.Contains(leaf.DNSNames, name) {
			t.Errorf("certificate lacks DNS name %q: %v", name, leaf.DNSNames)
		}
	}
	if len(leaf.IPAddresses) != 2 {
		t.Errorf("certificate IPs = %v, want 127.0.0.1 and ::1", leaf.IPAddresses)
	}
	if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("certificate does not cover 127.0.0.1: %v", err)
	}

	second, err := LoadOrCreate("", "", dir, "mail.egretair.example")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(first.Certificates[0].Certificate[0], second.Certificates[0].Certificate[0]) {
		t.Error("second start made a new certificate instead of reusing the first")
	}
}

func TestConfiguredFilesAreLoaded(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadOrCreate("", "", dir, "x.example"); err != nil {
		t.Fatal(err)
	}
	cert := filepath.Join(dir, "tls", SelfSignedCert)
	key := filepath.Join(dir, "tls", SelfSignedKey)
	other := t.TempDir()
	cfg, err := LoadOrCreate(cert, key, other, "ignored")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Certificates) != 1 {
		t.Fatalf("got %d certificates", len(cfg.Certificates))
	}
	if _, err := os.Stat(filepath.Join(other, "tls")); err == nil {
		t.Error("a self-signed pair was made although files were configured")
	}
}

func TestOnlyOneFileConfiguredIsAnError(t *testing.T) {
	if _, err := LoadOrCreate("cert.pem", "", t.TempDir(), "h"); err == nil {
		t.Error("want an error when the key file is missing from the configuration")
	}
}

func TestHalfWrittenPairIsMadeAgain(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadOrCreate("", "", dir, "mx.example"); err != nil {
		t.Fatal(err)
	}
	// A crash after the certificate but before the key reached disk.
	os.Remove(filepath.Join(dir, "tls", SelfSignedKey))
	if _, err := LoadOrCreate("", "", dir, "mx.example"); err != nil {
		t.Fatalf("start after a half-written pair: %v", err)
	}
}

func TestHostnameThatIsAnAddressIsAnIPName(t *testing.T) {
	cfg, err := LoadOrCreate("", "", t.TempDir(), "192.0.2.7")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(cfg.Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := leaf.VerifyHostname("192.0.2.7"); err != nil {
		t.Errorf("certificate does not cover its address: %v", err)
	}
	if slices.Contains(leaf.DNSNames, "192.0.2.7") {
		t.Errorf("address listed as a DNS name: %v", leaf.DNSNames)
	}
}
