// Package tlsconf gives the mail servers their TLS configuration: the
// operator's certificate when one is configured, otherwise a self-signed
// one that is made on first start and kept.
//
// Without a configured certificate the files are
//
//	<dataDir>/tls/selfsigned-cert.pem   ECDSA P-256, valid ten years
//	<dataDir>/tls/selfsigned-key.pem    mode 0600
//
// naming the configured hostname, localhost, 127.0.0.1 and ::1. Clients
// will warn about it; it keeps passwords off the wire until a real
// certificate is installed.
package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// File names of the self-signed pair under <dataDir>/tls.
const (
	SelfSignedCert = "selfsigned-cert.pem"
	SelfSignedKey  = "selfsigned-key.pem"
)

// LoadOrCreate answers a TLS server configuration. With certFile and
// keyFile set it loads them; with both empty it loads the self-signed
// pair under dataDir, creating it for hostname first when absent. Setting
// only one of the two is an error.
func LoadOrCreate(certFile, keyFile, dataDir, hostname string) (*tls.Config, error) {
	switch {
	case certFile != "" && keyFile != "":
	case certFile != "" || keyFile != "":
		return nil, errors.New("tlsconf: set both the certificate and the key file, or neither")
	default:
		dir := filepath.Join(dataDir, "tls")
		certFile = filepath.Join(dir, SelfSignedCert)
		keyFile = filepath.Join(dir, SelfSignedKey)
		// Either file missing means the pair was never finished (a
		// crash between the two writes): make a new one rather than
		// refuse to start until an operator steps in.
		_, certErr := os.Stat(certFile)
		_, keyErr := os.Stat(keyFile)
		if errors.Is(certErr, os.ErrNotExist) || errors.Is(keyErr, os.ErrNotExist) {
			if err := createSelfSigned(certFile, keyFile, hostname); err != nil {
				return nil, err
			}
		}
	}

	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: load %s: %w", certFile, err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// createSelfSigned writes a new key (0600) and a certificate for it.
func createSelfSigned(certFile, keyFile, hostname string) error {
	if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
		return fmt.Errorf("tlsconf: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("tlsconf: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return fmt.Errorf("tlsconf: serial: %w", err)
	}

	names := []string{"localhost"}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	switch ip := net.ParseIP(hostname); {
	case ip != nil:
		// An address goes in the IP SANs: clients do not match an
		// address against DNS names (RFC 5280 §4.2.1.6).
		ips = append(ips, ip)
	case hostname != "" && hostname != "localhost":
		names = append([]string{hostname}, names...)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0], Organization: []string{"egret self-signed"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     names,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("tlsconf: create certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("tlsconf: marshal key: %w", err)
	}

	// The key is written first: a certificate without its key would be
	// taken as a finished pair on the next start.
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if err := writeFile(keyFile, keyPEM, 0o600); err != nil {
		return err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return writeFile(certFile, certPEM, 0o644)
}

// writeFile writes data to a temporary file, syncs it and renames it to
// path.
func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return fmt.Errorf("tlsconf: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("tlsconf: write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("tlsconf: sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("tlsconf: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("tlsconf: %w", err)
	}

	// The rename is durable only once the folder is synced; the key
	// must be on disk before the certificate that needs it.
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("tlsconf: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("tlsconf: sync %s: %w", filepath.Dir(path), err)
	}
	return nil
}
