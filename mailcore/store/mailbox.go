package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// MailboxInfo describes a mailbox and counts its messages.
type MailboxInfo struct {
	// Name is the full mailbox name, levels separated by Delim.
	Name string
	// SpecialUse is the RFC 6154 attribute, such as `\Sent`, or "".
	SpecialUse string
	// Subscribed tells whether the mailbox is in the subscription list.
	Subscribed bool
	// UIDValidity and UIDNext are as in RFC 9051 §2.3.1.1.
	UIDValidity uint32
	UIDNext     uint32
	// Total counts messages; Unseen those without \Seen; Deleted those
	// with \Deleted.
	Total, Unseen, Deleted int
	// Size is the sum of the message sizes in bytes.
	Size int64
}

// info counts the mailbox's messages.
func (a *account) info(m *mailbox) MailboxInfo {
	in := MailboxInfo{
		Name:        m.name,
		SpecialUse:  specialUse[m.name],
		Subscribed:  a.subs[m.name],
		UIDValidity: m.validity,
		UIDNext:     m.next,
		Total:       len(m.msgs),
	}
	for _, msg := range m.msgs {
		in.Size += msg.name.size
		if !msg.flags.has(FlagSeen) {
			in.Unseen++
		}
		if msg.flags.has(FlagDeleted) {
			in.Deleted++
		}
	}
	return in
}

// Summary answers every mailbox of the account with its counts, sorted by
// name with INBOX first.
func (s *Store) Summary(ctx context.Context, accountID string) ([]MailboxInfo, error) {
	a, err := s.lockAccount(ctx, accountID)
	if err != nil {
		return nil, err
	}
	defer a.mu.Unlock()
	l := make([]MailboxInfo, 0, len(a.boxes))
	for _, m := range a.boxes {
		l = append(l, a.info(m))
	}
	slices.SortFunc(l, func(x, y MailboxInfo) int {
		switch {
		case x.Name == Inbox:
			return -1
		case y.Name == Inbox:
			return 1
		}
		return strings.Compare(x.Name, y.Name)
	})
	return l, nil
}

// Subscriptions answers the names in the subscription list, including
// names of mailboxes that no longer exist (RFC 9051 §6.3.7).
func (s *Store) Subscriptions(ctx context.Context, accountID string) ([]string, error) {
	a, err := s.lockAccount(ctx, accountID)
	if err != nil {
		return nil, err
	}
	defer a.mu.Unlock()
	var l []string
	for n := range a.subs {
		l = append(l, n)
	}
	slices.Sort(l)
	return l, nil
}

// Status answers one mailbox with its counts.
func (s *Store) Status(ctx context.Context, accountID, name string) (MailboxInfo, error) {
	a, err := s.lockAccount(ctx, accountID)
	if err != nil {
		return MailboxInfo{}, err
	}
	defer a.mu.Unlock()
	m, err := a.mailbox(name)
	if err != nil {
		return MailboxInfo{}, err
	}
	return a.info(m), nil
}

// Create makes a new mailbox, and its missing parents (RFC 9051 §6.3.4).
func (s *Store) Create(ctx context.Context, accountID, name string) error {
	a, err := s.lockAccount(ctx, accountID)
	if err != nil {
		return err
	}
	defer a.mu.Unlock()
	name, err = CleanName(name)
	if err != nil {
		return err
	}
	if a.boxes[name] != nil {
		return fmt.Errorf("%w: %q", ErrMailboxExists, name)
	}
	parts := strings.Split(name, "/")
	for i := 1; i <= len(parts); i++ {
		n := strings.Join(parts[:i], "/")
		if a.boxes[n] != nil {
			continue
		}
		if _, err := s.createMailbox(a, n); err != nil {
			return err
		}
	}
	return nil
}

// createMailbox makes the mailbox's folder and uidstate.
func (s *Store) createMailbox(a *account, name string) (*mailbox, error) {
	dir := filepath.Join(a.dir, "mailboxes", escapeName(name))
	if _, err := os.Stat(dir); err == nil {
		return nil, fmt.Errorf("%w: folder %s exists", ErrMailboxExists, dir)
	}
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("store: account %s: %w", a.id, err)
		}
	}
	m := &mailbox{
		name:      name,
		dir:       dir,
		validity:  a.nextValidity(),
		next:      1,
		fence:     s.fence.number(),
		delivered: make(map[string]uint32),
		watchers:  make(map[uint64]func(Change)),
	}
	if err := a.saveValidity(); err != nil {
		return nil, err
	}
	if err := m.saveState(); err != nil {
		return nil, err
	}
	if _, err := m.saveValidityOnce(); err != nil {
		return nil, err
	}
	if err := syncDir(filepath.Dir(dir)); err != nil {
		return nil, err
	}
	a.boxes[name] = m
	return m, nil
}

// Delete removes a mailbox and its messages. INBOX cannot be deleted. The
// mailbox's children stay (RFC 9051 §6.3.5); its subscription stays too.
func (s *Store) Delete(ctx context.Context, accountID, name string) error {
	a, err := s.lockAccount(ctx, accountID)
	if err != nil {
		return err
	}
	defer a.mu.Unlock()
	m, err := a.mailbox(name)
	if err != nil {
		return err
	}
	if m.name == Inbox {
		return fmt.Errorf("%w: INBOX cannot be deleted", ErrNotAllowed)
	}

	// Rename first so a crash cannot leave half a mailbox under its
	// name; then remove.
	gone := filepath.Join(a.dir, "mailboxes", "."+a.uniqueName("deleted-"))
	if err := os.Rename(m.dir, gone); err != nil {
		return fmt.Errorf("store: account %s: delete %q: %w", a.id, m.name, err)
	}
	if err := syncDir(filepath.Dir(m.dir)); err != nil {
		return err
	}
	if err := os.RemoveAll(gone); err != nil {
		s.log.Warn("deleted mailbox not removed", "account", a.id,
			"path", gone, "err", err)
	}
	delete(a.boxes, m.name)
	for i := len(m.msgs) - 1; i >= 0; i-- {
		m.notify(Change{Kind: Expunged, UID: m.msgs[i].uid})
	}
	m.notify(Change{Kind: Deleted})
	m.watchers = nil
	return nil
}

// Rename gives a mailbox and its children new names (RFC 9051 §6.3.6).
// Renaming INBOX moves its messages to the new mailbox and leaves INBOX
// empty.
func (s *Store) Rename(ctx context.Context, accountID, oldName, newName string) error {
	a, err := s.lockAccount(ctx, accountID)
	if err != nil {
		return err
	}
	defer a.mu.Unlock()
	m, err := a.mailbox(oldName)
	if err != nil {
		return err
	}
	newName, err = CleanName(newName)
	if err != nil {
		return err
	}
	if a.boxes[newName] != nil {
		return fmt.Errorf("%w: %q", ErrMailboxExists, newName)
	}
	if newName == m.name || strings.HasPrefix(newName, m.name+"/") {
		return fmt.Errorf("%w: cannot rename %q into itself", ErrNotAllowed, m.name)
	}

	if m.name == Inbox {
		// The new mailbox's parents first, as CREATE would make them.
		parts := strings.Split(newName, "/")
		for i := 1; i < len(parts); i++ {
			if n := strings.Join(parts[:i], "/"); a.boxes[n] == nil {
				if _, err := s.createMailbox(a, n); err != nil {
					return err
				}
			}
		}
		dst, err := s.createMailbox(a, newName)
		if err != nil {
			return err
		}
		uids := make([]uint32, len(m.msgs))
		for i, msg := range m.msgs {
			uids[i] = msg.uid
		}
		_, err = s.moveLocked(ctx, a, m, dst, uids)
		return err
	}

	// Children move with their parent.
	var renames [][2]string
	for n := range a.boxes {
		if n == m.name || strings.HasPrefix(n, m.name+"/") {
			renames = append(renames, [2]string{n, newName + n[len(m.name):]})
		}
	}
	for _, r := range renames {
		if a.boxes[r[1]] != nil {
			return fmt.Errorf("%w: %q", ErrMailboxExists, r[1])
		}
		if _, err := CleanName(r[1]); err != nil {
			return err
		}
	}
	for _, r := range renames {
		box := a.boxes[r[0]]
		dir := filepath.Join(a.dir, "mailboxes", escapeName(r[1]))
		if err := os.Rename(box.dir, dir); err != nil {
			return fmt.Errorf("store: account %s: rename %q: %w", a.id, r[0], err)
		}
		delete(a.boxes, r[0])
		box.name, box.dir = r[1], dir
		a.boxes[r[1]] = box
		box.notify(Change{Kind: Renamed, Mailbox: r[1]})
	}
	if err := syncDir(filepath.Join(a.dir, "mailboxes")); err != nil {
		return err
	}

	// Parents of the new name are created, as CREATE would.
	parts := strings.Split(newName, "/")
	for i := 1; i < len(parts); i++ {
		n := strings.Join(parts[:i], "/")
		if a.boxes[n] == nil {
			if _, err := s.createMailbox(a, n); err != nil {
				return err
			}
		}
	}
	return nil
}

// Subscribe adds a name to the subscription list, or with on false removes
// it. Subscribing needs the mailbox to exist; unsubscribing does not.
func (s *Store) Subscribe(ctx context.Context, accountID, name string, on bool) error {
	a, err := s.lockAccount(ctx, accountID)
	if err != nil {
		return err
	}
	defer a.mu.Unlock()
	clean, err := CleanName(name)
	if err != nil {
		return err
	}
	if on {
		if a.boxes[clean] == nil {
			return fmt.Errorf("%w: %q", ErrNoMailbox, name)
		}
		a.subs[clean] = true
	} else {
		if !a.subs[clean] {
			return nil
		}
		delete(a.subs, clean)
	}
	if err := a.saveSubscriptions(); err != nil {
		return fmt.Errorf("store: account %s: %w", a.id, err)
	}
	return nil
}

// isNotExist reports a missing file behind a wrapped error.
func isNotExist(err error) bool {
	return errors.Is(err, os.ErrNotExist)
}
