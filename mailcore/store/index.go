package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// logRepairs logs the index files a load or heal wrote again.
func (s *Store) logRepairs(a *account) {
	if len(a.repaired) == 0 {
		return
	}
	s.log.Warn("index rebuilt", "account", a.id, "files", a.repaired)
}

// takeRepairs answers the files the account's load wrote again that no
// caller has been told of yet.
func (a *account) takeRepairs() []string {
	l := a.repaired
	a.repaired = nil
	return l
}

// heal compares a loaded account's index files with its index and writes
// again each one that is missing, unreadable or out of step. The index in
// memory is the truth here: it was built from the files, and every
// change since went through it.
func (s *Store) heal(a *account) error {
	a.repaired = nil
	if !a.validityFileOK() {
		if err := a.saveValidity(); err != nil {
			return err
		}
		a.repaired = append(a.repaired, "uidvalidity")
	}
	names := make([]string, 0, len(a.boxes))
	for n := range a.boxes {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		m := a.boxes[n]
		b, err := os.ReadFile(filepath.Join(m.dir, "uidstate"))
		if err != nil && !isNotExist(err) {
			return fmt.Errorf("store: account %s: %w", a.id, err)
		}
		if v, next := parseState(b); v != m.validity || next != m.savedNext {
			if err := m.saveState(); err != nil {
				return err
			}
			a.repaired = append(a.repaired, n+"/uidstate")
		}
		if changed, err := m.saveValidityOnce(); err != nil {
			return err
		} else if changed {
			a.repaired = append(a.repaired, n+"/uidvalidity")
		}
		if !m.keywordsFileOK() {
			if err := m.saveKeywords(); err != nil {
				return err
			}
			a.repaired = append(a.repaired, n+"/keywords")
		}
	}
	s.logRepairs(a)
	return nil
}

// validityFileOK reports whether the account's uidvalidity file holds
// the last UIDVALIDITY handed out.
func (a *account) validityFileOK() bool {
	b, err := os.ReadFile(filepath.Join(a.dir, "uidvalidity"))
	if err != nil {
		return false
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
	return err == nil && uint32(v) == a.validity
}

// keywordsFileOK reports whether the keywords file says what the index
// says: absent when no message has a keyword, else readable and equal.
func (m *mailbox) keywordsFileOK() bool {
	want := make(map[uint32][]string)
	for _, msg := range m.msgs {
		if len(msg.flags.keywords) > 0 {
			want[msg.uid] = msg.flags.keywords
		}
	}
	b, err := os.ReadFile(filepath.Join(m.dir, "keywords"))
	if errors.Is(err, os.ErrNotExist) {
		return len(want) == 0
	}
	var got map[uint32][]string
	if err != nil || json.Unmarshal(b, &got) != nil || len(got) != len(want) {
		return false
	}
	for uid, kw := range want {
		if !slices.Equal(got[uid], kw) {
			return false
		}
	}
	return true
}

// nameValidity renames message files whose name lacks the mailbox's
// UIDVALIDITY (written before it was recorded there), so that the
// names alone can restore it. Like a flag change, the rename is not
// synced: a crash leaves the old name, which is read as well.
func (m *mailbox) nameValidity() error {
	for _, msg := range m.msgs {
		if msg.name.validity == m.validity {
			continue
		}
		old := m.path(msg)
		msg.name.validity = m.validity
		if err := os.Rename(old, m.path(msg)); err != nil {
			return fmt.Errorf("name UIDVALIDITY into %s: %w", old, err)
		}
	}
	return nil
}

// RebuildIndex loads an account (rebuilding what is missing from its
// files) and writes again every index file out of step with the index.
// It answers the files it wrote, as paths under the account's folder.
func (s *Store) RebuildIndex(ctx context.Context, accountID string) ([]string, error) {
	a, err := s.lockAccount(ctx, accountID)
	if err != nil {
		return nil, err
	}
	defer a.mu.Unlock()
	out := a.takeRepairs()
	err = s.heal(a)
	return append(out, a.takeRepairs()...), err
}

// AccountIDs answers the ids of the accounts that have a folder in the
// store at dir, without opening it.
func AccountIDs(dir string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(dir, "accounts"))
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	var ids []string
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		id, err := unescapeName(e.Name())
		if err == nil {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// CheckIndex reads the index files of one account in the store at dir
// and answers what is wrong with them, without changing anything and
// without opening the store, so it is safe beside a running server
// (whose index in memory may be ahead of the files only by what it is
// writing at that moment). An empty answer means the files agree with
// the message names.
func CheckIndex(dir, accountID string) ([]string, error) {
	acctDir := filepath.Join(dir, "accounts", escapeName(accountID))
	boxes, err := os.ReadDir(filepath.Join(acctDir, "mailboxes"))
	if err != nil {
		return nil, fmt.Errorf("store: account %s: %w", accountID, err)
	}
	var problems []string
	var highest uint32
	for _, e := range boxes {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		name, err := unescapeName(e.Name())
		if err != nil {
			problems = append(problems, e.Name()+": folder name cannot be read")
			continue
		}
		p, v := checkMailbox(filepath.Join(acctDir, "mailboxes", e.Name()))
		for _, s := range p {
			problems = append(problems, name+"/"+s)
		}
		highest = max(highest, v)
	}
	b, err := os.ReadFile(filepath.Join(acctDir, "uidvalidity"))
	v, perr := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
	switch {
	case err != nil:
		problems = append(problems, "uidvalidity: missing or unreadable")
	case perr != nil || uint32(v) < highest:
		problems = append(problems, "uidvalidity: damaged")
	}
	return problems, nil
}

// checkMailbox answers what is wrong with one mailbox's index files, and
// its UIDVALIDITY as best known.
func checkMailbox(dir string) ([]string, uint32) {
	var problems []string
	b, err := os.ReadFile(filepath.Join(dir, "uidstate"))
	validity, next := parseState(b)
	switch {
	case err != nil:
		problems = append(problems, "uidstate: missing or unreadable")
	case validity == 0 || next == 0:
		problems = append(problems, "uidstate: damaged")
	}
	b, err = os.ReadFile(filepath.Join(dir, "uidvalidity"))
	v, perr := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
	switch {
	case err != nil:
		problems = append(problems, "uidvalidity: missing or unreadable")
	case perr != nil || v == 0 || (validity != 0 && uint32(v) != validity):
		problems = append(problems, "uidvalidity: damaged")
	}
	if validity == 0 {
		validity = uint32(v)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "keywords")); err == nil {
		var kw map[uint32][]string
		if json.Unmarshal(b, &kw) != nil {
			problems = append(problems, "keywords: damaged (keywords lost)")
		}
	}

	// A message file above uidstate's UIDNEXT is no damage: deliveries
	// do not rewrite uidstate, and loading takes UIDNEXT past the
	// highest UID on file. A file of another UIDVALIDITY is.
	other, foreign := 0, 0
	for _, sub := range []string{"new", "cur"} {
		entries, _ := os.ReadDir(filepath.Join(dir, sub))
		for _, e := range entries {
			if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			fn, ok := parseFileName(e.Name())
			switch {
			case !ok:
				foreign++
			case fn.validity != 0 && validity != 0 && fn.validity != validity:
				other++
			}
		}
	}
	if other > 0 {
		problems = append(problems, fmt.Sprintf("%d message files of another UIDVALIDITY", other))
	}
	if foreign > 0 {
		problems = append(problems, fmt.Sprintf("%d files without a UID (given one at the next load)", foreign))
	}
	return problems, validity
}
