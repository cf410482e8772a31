// Package dkim keeps the node's DKIM keys (RFC 6376) and signs outgoing
// mail with them.
//
// # Layout
//
//	<data>/dkim/
//	  <domain>.<selector>.key   PKCS #8 private key, PEM, mode 0600
//
// A domain may hold keys under several selectors while a new one is
// being published; the newest file signs. `egret dkim keygen` writes a
// key and prints the TXT record to publish at
// <selector>._domainkey.<domain>.
//
// # Failure semantics
//
// Signing happens in package outbound just before a message leaves for
// a remote MX, over the bytes the queue holds; the signature is one
// header field put in front of them and nothing else changes. A message
// whose From domain has no key goes out unsigned. A key file that
// cannot be read stops Load, so a node never starts signing with half
// its keys; a signing error fails the attempt, which the queue retries.
package dkim

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	msgdkim "github.com/emersion/go-msgauth/dkim"
)

// Algorithms Keygen makes keys for.
const (
	// RSA is RSA-2048, which every verifier knows (RFC 8301 §3.2).
	RSA = "rsa"
	// Ed25519 is RFC 8463; not every verifier knows it yet.
	Ed25519 = "ed25519"
)

// DefaultSelector is the selector Keygen uses unless told otherwise.
const DefaultSelector = "egret"

// headerKeys are the fields signed, as RFC 6376 §5.4.1 suggests. From is
// required; the others are signed when present, and From is listed
// twice so that a From added on the way breaks the signature (§8.15).
var headerKeys = []string{
	"From", "From", "Reply-To", "Subject", "Date", "To", "Cc",
	"Message-ID", "In-Reply-To", "References", "MIME-Version",
	"Content-Type", "Content-Transfer-Encoding",
}

// Key is one signing key of a domain.
type Key struct {
	Domain   string
	Selector string
	Signer   crypto.Signer
	// Path is the key's file.
	Path    string
	modTime time.Time
}

// Keys are the keys of the node, the newest per domain.
type Keys struct {
	byDomain map[string]*Key
}

// Load reads every key in dir. A dir that does not exist holds no keys.
func Load(dir string) (*Keys, error) {
	ks := &Keys{byDomain: map[string]*Key{}}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return ks, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dkim: %w", err)
	}
	for _, ent := range entries {
		stem, ok := strings.CutSuffix(ent.Name(), ".key")
		if !ok || ent.IsDir() {
			continue
		}
		i := strings.LastIndexByte(stem, '.')
		if i <= 0 || i == len(stem)-1 {
			return nil, fmt.Errorf("dkim: %s: want DOMAIN.SELECTOR.key", ent.Name())
		}
		k, err := readKey(filepath.Join(dir, ent.Name()))
		if err != nil {
			return nil, err
		}
		k.Domain, k.Selector = strings.ToLower(stem[:i]), stem[i+1:]
		if cur := ks.byDomain[k.Domain]; cur == nil || k.modTime.After(cur.modTime) {
			ks.byDomain[k.Domain] = k
		}
	}
	return ks, nil
}

// readKey reads one PEM PKCS #8 private key.
func readKey(path string) (*Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("dkim: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("dkim: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("dkim: %s: no PEM block", path)
	}
	priv, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("dkim: %s: %w", path, err)
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("dkim: %s: not a signing key", path)
	}
	switch signer.(type) {
	case *rsa.PrivateKey, ed25519.PrivateKey:
	default:
		return nil, fmt.Errorf("dkim: %s: want an RSA or Ed25519 key", path)
	}
	return &Key{Signer: signer, Path: path, modTime: fi.ModTime()}, nil
}

// For answers the key that signs mail from domain, or nil.
func (ks *Keys) For(domain string) *Key {
	if ks == nil {
		return nil
	}
	return ks.byDomain[strings.ToLower(domain)]
}

// Sign answers the DKIM-Signature field, ending in CRLF, for msg as
// signed by domain's key, or "" when domain has none.
func (ks *Keys) Sign(domain string, msg []byte) (string, error) {
	k := ks.For(domain)
	if k == nil {
		return "", nil
	}
	opts := &msgdkim.SignOptions{
		Domain:   k.Domain,
		Selector: k.Selector,
		Signer:   k.Signer,
		// Relaxed survives the header refolding some relays do
		// (RFC 6376 §3.4).
		HeaderCanonicalization: msgdkim.CanonicalizationRelaxed,
		BodyCanonicalization:   msgdkim.CanonicalizationRelaxed,
		HeaderKeys:             headerKeys,
	}
	s, err := msgdkim.NewSigner(opts)
	if err != nil {
		return "", fmt.Errorf("dkim: %s: %w", domain, err)
	}
	if _, err := s.Write(msg); err != nil {
		s.Close()
		return "", fmt.Errorf("dkim: %s: %w", domain, err)
	}
	if err := s.Close(); err != nil {
		return "", fmt.Errorf("dkim: %s: %w", domain, err)
	}
	return s.Signature(), nil
}

// Keygen makes a key for domain under selector in dir and answers it.
// An existing key file is never replaced.
func Keygen(dir, domain, selector, algorithm string) (*Key, error) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	if domain == "" || strings.ContainsAny(domain, "/@ ") {
		return nil, fmt.Errorf("dkim: %q is not a domain name", domain)
	}
	if selector == "" {
		selector = DefaultSelector
	}
	if strings.ContainsAny(selector, "/. ") {
		return nil, fmt.Errorf("dkim: selector %q: letters, digits and '-' only", selector)
	}
	var signer crypto.Signer
	var err error
	switch algorithm {
	case RSA, "":
		signer, err = rsa.GenerateKey(rand.Reader, 2048)
	case Ed25519:
		_, signer, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, fmt.Errorf("dkim: algorithm %q: want rsa or ed25519", algorithm)
	}
	if err != nil {
		return nil, fmt.Errorf("dkim: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(signer)
	if err != nil {
		return nil, fmt.Errorf("dkim: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("dkim: %w", err)
	}
	path := filepath.Join(dir, domain+"."+selector+".key")

	// Written, synced, and the folder synced: a key whose TXT record
	// was published must not vanish with a power cut.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("dkim: %w", err)
	}
	err = pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("dkim: %s: %w", path, err)
	}
	return &Key{Domain: domain, Selector: selector, Signer: signer, Path: path}, nil
}

// syncDir makes a new entry of dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// RecordName answers where the key's TXT record is published
// (RFC 6376 §3.6.2.1).
func (k *Key) RecordName() string {
	return k.Selector + "._domainkey." + k.Domain
}

// TXT answers the text of the key's DNS record (RFC 6376 §3.6.1).
func (k *Key) TXT() (string, error) {
	var kind string
	var pub []byte
	switch p := k.Signer.Public().(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(p)
		if err != nil {
			return "", fmt.Errorf("dkim: %w", err)
		}
		kind, pub = "rsa", der
	case ed25519.PublicKey:
		// RFC 8463 §4.2: the bare 32 bytes, not a PKIX structure.
		kind, pub = "ed25519", []byte(p)
	default:
		return "", errors.New("dkim: unknown key type")
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "v=DKIM1; k=%s; p=%s", kind, base64.StdEncoding.EncodeToString(pub))
	return b.String(), nil
}
