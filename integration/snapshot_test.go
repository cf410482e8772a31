package integration

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
)

// ekpElement holds the fields of an EKP org element that the tests
// predict results from. The test reads the fixture itself rather than
// trusting numbers written down beside it.
type ekpElement struct {
	ID             string  `json:"id"`
	Type           string  `json:"type"`
	IsAvailable    bool    `json:"isAvailable"`
	LoginName      string  `json:"loginName"`
	LoginNameLower string  `json:"loginNameLower"`
	Email          *string `json:"email"`
}

// snapshot is an OA fixture and what the tests expect of it.
type snapshot struct {
	// Path is the fixture's file.
	Path string
	// JSON is the snapshot as the OA sends it, uncompressed.
	JSON     []byte
	Elements []ekpElement
	// ByType counts the elements of each type.
	ByType map[string]int
	// Available and Left count the people who are and are not
	// available.
	Available, Left int
}

// loadSnapshot reads an EKP export: the envelope whose "message" is the
// element array as a JSON string, or the bare array; gzipped if the name
// ends in .gz.
func loadSnapshot(t *testing.T, path string) *snapshot {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		raw, err = io.ReadAll(zr)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}

	elements, err := decodeElements(raw)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	s := &snapshot{Path: path, JSON: raw, Elements: elements, ByType: map[string]int{}}
	for _, e := range elements {
		s.ByType[e.Type]++
		if e.Type != "person" {
			continue
		}
		if e.IsAvailable {
			s.Available++
		} else {
			s.Left++
		}
	}
	if s.Available == 0 {
		t.Fatalf("%s: no available person; the tests need some", path)
	}
	return s
}

func decodeElements(raw []byte) ([]ekpElement, error) {
	var elements []ekpElement
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		err := json.Unmarshal(trimmed, &elements)
		return elements, err
	}
	var envelope struct {
		Message json.RawMessage `json:"message"`
	}
	if err := json.Unmarshal(trimmed, &envelope); err != nil {
		return nil, err
	}
	msg := envelope.Message
	var inner string
	if err := json.Unmarshal(msg, &inner); err == nil {
		msg = []byte(inner)
	}
	if err := json.Unmarshal(msg, &elements); err != nil {
		return nil, fmt.Errorf("envelope message: %w", err)
	}
	return elements, nil
}

// address answers the mail address egret gives a person: the OA email
// when it is on the mail domain, else the lower-case login there.
func (e ekpElement) address(domain string) string {
	if e.Email != nil {
		email := strings.ToLower(strings.TrimSpace(*e.Email))
		if strings.HasSuffix(email, "@"+domain) {
			return email
		}
	}
	login := e.LoginNameLower
	if login == "" {
		login = strings.ToLower(e.LoginName)
	}
	return login + "@" + domain
}

// hasOAEmail reports whether the person's address is the OA's email
// rather than one egret derived from the login.
func (e ekpElement) hasOAEmail(domain string) bool {
	return e.Email != nil &&
		strings.HasSuffix(strings.ToLower(strings.TrimSpace(*e.Email)), "@"+domain)
}

// pickPerson answers the first available person that match accepts and
// whose address no other person of the snapshot shares.
func (s *snapshot) pickPerson(t *testing.T, what string, match func(ekpElement) bool) ekpElement {
	t.Helper()
	owners := map[string]int{}
	for _, e := range s.Elements {
		if e.Type == "person" {
			owners[e.address(mailDomain)]++
		}
	}
	for _, e := range s.Elements {
		if e.Type == "person" && e.IsAvailable && owners[e.address(mailDomain)] == 1 && match(e) {
			return e
		}
	}
	t.Fatalf("the snapshot has no available person %s", what)
	return ekpElement{}
}
