package sso

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
)

// newSecret answers 32 random bytes as unpadded base64url, the form a
// token or session id travels in.
func newSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// digest answers the hex SHA-256 of a secret, the form it is stored in.
// A secret has 256 bits of entropy, so a fast hash suffices: there is
// nothing to guess from a digest that leaks.
func digest(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// plausibleSecret refuses at once what newSecret cannot have made, so
// junk never reaches the database.
func plausibleSecret(s string) bool {
	if len(s) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil
}
