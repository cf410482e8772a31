package store

import "context"

// Tail answers a page of a mailbox counted from its newest message
// (highest UID): skip messages are passed over, then up to n are
// answered, newest first, with the mailbox's total count. Unlike
// Messages it copies only the page, so a web list or a portal's
// "latest mail" costs the same in a mailbox of any size.
func (s *Store) Tail(ctx context.Context, accountID, mailbox string, skip, n int) (Snapshot, int, error) {
	a, err := s.lockAccount(ctx, accountID)
	if err != nil {
		return Snapshot{}, 0, err
	}
	defer a.mu.Unlock()
	m, err := a.source(ctx, mailbox)
	if err != nil {
		return Snapshot{}, 0, err
	}
	snap := Snapshot{Mailbox: m.name, UIDValidity: m.validity, UIDNext: m.next}
	total := len(m.msgs)
	for i := total - 1 - max(skip, 0); i >= 0 && len(snap.Messages) < n; i-- {
		snap.Messages = append(snap.Messages, m.msgs[i].export())
	}
	return snap, total, nil
}
