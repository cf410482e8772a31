package store

import (
	"context"
	"fmt"
)

// ChangeKind says what happened to a message.
type ChangeKind int

// Kinds of change.
const (
	// Added: a message arrived (delivery, APPEND, COPY, MOVE).
	Added ChangeKind = iota + 1
	// Expunged: a message left (EXPUNGE, MOVE, mailbox deleted).
	Expunged
	// FlagsChanged: a message's flags changed.
	FlagsChanged
	// Renamed: the mailbox now has the name in Mailbox.
	Renamed
	// Deleted: the mailbox is gone; Expunged changes for each of its
	// messages came before, and no change comes after.
	Deleted
)

// Change tells a watcher about one message of its mailbox.
type Change struct {
	Kind ChangeKind
	UID  uint32
	// Flags are the message's flags after an Added or FlagsChanged.
	Flags []string
	// Mailbox is the new name after a Renamed.
	Mailbox string
	// Origin is the value the context of the changing call carried (see
	// WithOrigin), so an IMAP session can tell its own changes.
	Origin any
}

type originKey struct{}

// WithOrigin marks a context so that changes made with it carry origin.
func WithOrigin(ctx context.Context, origin any) context.Context {
	return context.WithValue(ctx, originKey{}, origin)
}

// originOf answers the origin a context carries.
func originOf(ctx context.Context) any {
	return ctx.Value(originKey{})
}

type validityKey struct{}

// WithUIDValidity marks a context so that the calls made with it reach
// the mailbox they name only while it has UIDVALIDITY v; otherwise they
// fail with ErrNoMailbox. An IMAP session uses it for its selected
// mailbox: once that mailbox is deleted, or renamed and its name given to
// another, the session's FETCH, STORE or EXPUNGE must not reach the
// mailbox now under the name. The destination of Copy and Move is not
// checked.
func WithUIDValidity(ctx context.Context, v uint32) context.Context {
	return context.WithValue(ctx, validityKey{}, v)
}

// source answers the named mailbox of a locked account, if it has the
// UIDVALIDITY ctx asks for.
func (a *account) source(ctx context.Context, name string) (*mailbox, error) {
	m, err := a.mailbox(name)
	if err != nil {
		return nil, err
	}
	if v, ok := ctx.Value(validityKey{}).(uint32); ok && v != m.validity {
		return nil, fmt.Errorf("%w: %q is not the mailbox with UIDVALIDITY %d",
			ErrNoMailbox, name, v)
	}
	return m, nil
}

// notify tells the mailbox's watchers of a change.
func (m *mailbox) notify(c Change) {
	for _, fn := range m.watchers {
		fn(c)
	}
}

// Watch answers a snapshot of a mailbox and calls fn with every change
// made after it, until cancel is called. fn is called with the account
// locked, in order: it must return quickly and must not call the store.
// A renamed mailbox keeps its watchers and tells them its new name; a
// deleted one reports every message expunged, then Deleted, and then goes
// quiet.
func (s *Store) Watch(ctx context.Context, accountID, mailbox string, fn func(Change)) (Snapshot, func(), error) {
	a, err := s.lockAccount(ctx, accountID)
	if err != nil {
		return Snapshot{}, nil, err
	}
	defer a.mu.Unlock()
	m, err := a.mailbox(mailbox)
	if err != nil {
		return Snapshot{}, nil, err
	}
	a.watchSeq++
	key := a.watchSeq
	m.watchers[key] = fn
	cancel := func() {
		a.mu.Lock()
		delete(m.watchers, key)
		a.mu.Unlock()
	}
	return m.snapshot(), cancel, nil
}
