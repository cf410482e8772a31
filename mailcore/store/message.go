package store

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/google/uuid"
)

// Message is the index entry of a message as callers see it.
type Message struct {
	UID          uint32
	Flags        []string
	Size         int64
	InternalDate time.Time
}

// Snapshot is a mailbox's messages at one moment, in UID order.
type Snapshot struct {
	Mailbox     string
	UIDValidity uint32
	UIDNext     uint32
	Messages    []Message
}

// Delivery is the outcome of a delivery to one account.
type Delivery struct {
	AccountID string
	UID       uint32
	// Duplicate is true when INBOX already held a message delivered
	// with the same id, and nothing was written.
	Duplicate bool
	// Err is ErrOverQuota or ErrTooBigForQuota (wrapped) when the
	// account had no room for the message, and nothing was written.
	Err error
}

// Recipient is an account a delivery goes to.
type Recipient struct {
	AccountID string
	// QuotaBytes bounds what the account's mailboxes may hold
	// together; zero means no limit.
	QuotaBytes int64
}

// CopyResult tells which UIDs copied or moved messages were given, for
// the COPYUID response (RFC 4315 §3).
type CopyResult struct {
	UIDValidity uint32
	Source      []uint32
	Dest        []uint32
}

// export answers the message as callers see it.
func (msg *message) export() Message {
	return Message{
		UID:          msg.uid,
		Flags:        msg.flags.list(),
		Size:         msg.name.size,
		InternalDate: msg.name.date,
	}
}

// snapshot answers the mailbox's messages.
func (m *mailbox) snapshot() Snapshot {
	s := Snapshot{
		Mailbox:     m.name,
		UIDValidity: m.validity,
		UIDNext:     m.next,
		Messages:    make([]Message, len(m.msgs)),
	}
	for i, msg := range m.msgs {
		s.Messages[i] = msg.export()
	}
	return s
}

// Messages answers a snapshot of a mailbox's messages.
func (s *Store) Messages(ctx context.Context, accountID, mailbox string) (Snapshot, error) {
	a, err := s.lockAccount(ctx, accountID)
	if err != nil {
		return Snapshot{}, err
	}
	defer a.mu.Unlock()
	m, err := a.source(ctx, mailbox)
	if err != nil {
		return Snapshot{}, err
	}
	return m.snapshot(), nil
}

// Deliver writes a message into the INBOX of each account, durably, and
// answers one Delivery per account. id is the delivery's unique id (the
// SMTP queue id): a second delivery with an id that INBOX already holds
// is dropped, so a retry after a crash does not show the message twice.
//
// The bytes are written once; the accounts share them by hard link. On an
// error some accounts may have the message already; delivering again with
// the same id completes the rest.
func (s *Store) Deliver(ctx context.Context, id string, accountIDs []string, r io.Reader) ([]Delivery, error) {
	rcpts := make([]Recipient, len(accountIDs))
	for i, acct := range accountIDs {
		rcpts[i].AccountID = acct
	}
	return s.DeliverTo(ctx, id, rcpts, r)
}

// DeliverTo is Deliver with a quota per account. An account without room
// gets a Delivery whose Err says why; the others get the message. A
// duplicate is recognised before the quota is checked, so a retry of a
// delivery that was stored is never refused.
func (s *Store) DeliverTo(ctx context.Context, id string, rcpts []Recipient, r io.Reader) ([]Delivery, error) {
	if id == "" {
		id = uuid.NewString()
	}
	unique := uniquePart("d-", id)
	for _, rc := range rcpts {
		a, err := s.lockAccount(ctx, rc.AccountID)
		if err != nil {
			return nil, err
		}
		a.mu.Unlock()
	}

	// Write the bytes to the spool and sync them.
	spoolName := unique + "." + uuid.NewString()
	spool, size, err := writeTemp(filepath.Join(s.dir, "tmp"), spoolName, r)
	if err != nil {
		return nil, err
	}
	defer os.Remove(spool)

	date := time.Now()
	var out []Delivery
	for _, rc := range rcpts {
		d, err := s.deliverOne(ctx, rc, unique, spool, size, date)
		if err != nil {
			return out, err
		}
		out = append(out, d)
	}
	return out, nil
}

// deliverOne links a spooled message into one account's INBOX.
func (s *Store) deliverOne(ctx context.Context, rc Recipient, unique, spool string, size int64, date time.Time) (Delivery, error) {
	acct := rc.AccountID
	a, err := s.lockAccount(ctx, acct)
	if err != nil {
		return Delivery{}, err
	}
	defer a.mu.Unlock()
	m := a.boxes[Inbox]
	if uid, ok := m.delivered[unique]; ok {
		return Delivery{AccountID: acct, UID: uid, Duplicate: true}, nil
	}
	if err := a.fits(rc.QuotaBytes, size); err != nil {
		return Delivery{AccountID: acct, Err: err}, nil
	}

	msg := &message{uid: m.next, unique: unique}
	msg.name = fileName{uid: msg.uid, date: date, unique: unique, size: size,
		validity: m.validity}
	// The spool was written from the network before lockAccount
	// checked the fence again, with the account locked: a delivery
	// that outlasted the lease stops there.
	if err := placeFile(spool, m.path(msg), filepath.Join(m.dir, "tmp")); err != nil {
		return Delivery{}, fmt.Errorf("store: account %s: %w", acct, err)
	}

	// The file is in new/; syncing the folder makes the entry durable,
	// and only then is the delivery reported done.
	if err := syncDir(filepath.Join(m.dir, "new")); err != nil {
		// Not in the index, the file must not stay either: the next
		// delivery would be given its name and overwrite it.
		os.Remove(m.path(msg))
		return Delivery{}, fmt.Errorf("store: account %s: %w", acct, err)
	}
	m.next++
	m.msgs = append(m.msgs, msg)
	m.delivered[unique] = msg.uid
	m.notify(Change{Kind: Added, UID: msg.uid, Flags: msg.flags.list(),
		Origin: originOf(ctx)})
	return Delivery{AccountID: acct, UID: msg.uid}, nil
}

// Append adds a message to a mailbox with the given flags and internal
// date (now when zero), durably, and answers the mailbox's UIDVALIDITY and
// the new message's UID.
func (s *Store) Append(ctx context.Context, accountID, mailbox string, r io.Reader, flags []string, date time.Time) (uint32, uint32, error) {
	return s.AppendWithin(ctx, accountID, 0, mailbox, r, flags, date)
}

// AppendWithin is Append for an account whose mailboxes may hold quota
// bytes together (zero: no limit). A message that does not fit is not
// kept, and the error wraps ErrOverQuota or ErrTooBigForQuota.
func (s *Store) AppendWithin(ctx context.Context, accountID string, quota int64, mailbox string, r io.Reader, flags []string, date time.Time) (uint32, uint32, error) {
	if date.IsZero() {
		date = time.Now()
	}
	a, err := s.lockAccount(ctx, accountID)
	if err != nil {
		return 0, 0, err
	}
	m, err := a.mailbox(mailbox)
	if err != nil {
		a.mu.Unlock()
		return 0, 0, err
	}
	unique := a.uniqueName("a-")
	tmpDir := filepath.Join(m.dir, "tmp")
	a.mu.Unlock()

	// Write and sync the bytes without holding the account's lock.
	tmp, size, err := writeTemp(tmpDir, unique, r)
	if err != nil {
		return 0, 0, err
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	if a.boxes[m.name] != m {
		os.Remove(tmp)
		return 0, 0, fmt.Errorf("%w: %q removed during append", ErrNoMailbox, mailbox)
	}
	// The mailbox may have been renamed meanwhile, with its tmp/.
	tmp = filepath.Join(m.dir, "tmp", unique)
	// The client's upload may have lasted longer than the lease: the
	// fence is checked again before the message shows.
	if err := s.fence.check(); err != nil {
		os.Remove(tmp)
		return 0, 0, err
	}
	if err := a.fits(quota, size); err != nil {
		os.Remove(tmp)
		return 0, 0, err
	}

	msg := &message{uid: m.next, unique: unique, inCur: true}
	msg.flags = flagSet{}.apply(FlagsSet, flags)
	msg.name = fileName{uid: msg.uid, date: date, unique: unique,
		size: size, validity: m.validity, info: true, flags: msg.flags.letters}
	if err := os.Rename(tmp, m.path(msg)); err != nil {
		os.Remove(tmp)
		return 0, 0, fmt.Errorf("store: account %s: %w", accountID, err)
	}

	// Synced file renamed into cur/; sync the folder before answering.
	if err := syncDir(filepath.Join(m.dir, "cur")); err != nil {
		return 0, 0, err
	}
	m.next++
	m.msgs = append(m.msgs, msg)
	if len(msg.flags.keywords) > 0 {
		if err := m.saveKeywords(); err != nil {
			return 0, 0, err
		}
	}
	m.notify(Change{Kind: Added, UID: msg.uid, Flags: msg.flags.list(),
		Origin: originOf(ctx)})
	return m.validity, msg.uid, nil
}

// OpenMessage opens a message's file for reading. The file stays readable
// even if the message is expunged meanwhile. The caller closes it.
func (s *Store) OpenMessage(ctx context.Context, accountID, mailbox string, uid uint32) (*os.File, Message, error) {
	a, err := s.lockAccount(ctx, accountID)
	if err != nil {
		return nil, Message{}, err
	}
	defer a.mu.Unlock()
	m, err := a.source(ctx, mailbox)
	if err != nil {
		return nil, Message{}, err
	}
	i := m.find(uid)
	if i < 0 {
		return nil, Message{}, fmt.Errorf("%w: uid %d in %q", ErrNoMessage, uid, mailbox)
	}
	f, err := os.Open(m.path(m.msgs[i]))
	if err != nil {
		return nil, Message{}, fmt.Errorf("store: account %s: %w", accountID, err)
	}
	return f, m.msgs[i].export(), nil
}

// StoreFlags changes the flags of the messages with the given UIDs and
// answers them afterwards. UIDs not in the mailbox are skipped.
func (s *Store) StoreFlags(ctx context.Context, accountID, mailbox string, uids []uint32, op FlagOp, flags []string) ([]Message, error) {
	a, err := s.lockAccount(ctx, accountID)
	if err != nil {
		return nil, err
	}
	defer a.mu.Unlock()
	m, err := a.source(ctx, mailbox)
	if err != nil {
		return nil, err
	}

	var out []Message
	keywordsChanged := false
	for _, uid := range uids {
		i := m.find(uid)
		if i < 0 {
			continue
		}
		msg := m.msgs[i]
		nf := msg.flags.apply(op, flags)
		if nf.equal(msg.flags) {
			out = append(out, msg.export())
			continue
		}
		if !slices.Equal(nf.keywords, msg.flags.keywords) {
			keywordsChanged = true
		}
		if nf.letters != msg.flags.letters || !msg.inCur {
			// A rename of a folder another node serves now would
			// hide the file from that node's index.
			if err := s.fence.check(); err != nil {
				return out, err
			}
			old := m.path(msg)
			moved := *msg
			moved.inCur = true
			moved.name.info, moved.name.flags = true, nf.letters
			if err := os.Rename(old, m.path(&moved)); err != nil {
				return out, fmt.Errorf("store: account %s: flags of uid %d: %w",
					accountID, uid, err)
			}
			msg.inCur, msg.name = true, moved.name
		}
		msg.flags = nf
		out = append(out, msg.export())
		m.notify(Change{Kind: FlagsChanged, UID: uid,
			Flags: msg.flags.list(), Origin: originOf(ctx)})
	}
	if keywordsChanged {
		if err := m.saveKeywords(); err != nil {
			return out, err
		}
	}
	return out, nil
}

// Copy copies messages to another (or the same) mailbox, keeping flags and
// internal dates.
func (s *Store) Copy(ctx context.Context, accountID, src string, uids []uint32, dst string) (CopyResult, error) {
	return s.CopyWithin(ctx, accountID, 0, src, uids, dst)
}

// CopyWithin is Copy for an account whose mailboxes may hold quota bytes
// together (zero: no limit). Copies that would not all fit are not made
// (RFC 9208 §4.3.1), and the error wraps ErrOverQuota or
// ErrTooBigForQuota.
func (s *Store) CopyWithin(ctx context.Context, accountID string, quota int64, src string, uids []uint32, dst string) (CopyResult, error) {
	a, from, to, err := s.lockPair(ctx, accountID, src, dst)
	if err != nil {
		return CopyResult{}, err
	}
	defer a.mu.Unlock()

	if quota > 0 {
		var size int64
		for _, uid := range uids {
			if i := from.find(uid); i >= 0 {
				size += from.msgs[i].name.size
			}
		}
		if err := a.fits(quota, size); err != nil {
			return CopyResult{}, err
		}
	}

	res := CopyResult{UIDValidity: to.validity}
	var added []*message
	for _, uid := range sortedUIDs(uids) {
		i := from.find(uid)
		if i < 0 {
			continue
		}
		old := from.msgs[i]
		msg := &message{uid: to.next, unique: a.uniqueName("c-"),
			inCur: true, flags: old.flags}
		msg.flags.keywords = slices.Clone(old.flags.keywords)
		msg.name = old.name
		msg.name.uid, msg.name.unique = msg.uid, msg.unique
		msg.name.validity = to.validity
		msg.name.info, msg.name.flags = true, old.flags.letters
		if err := s.fence.check(); err != nil {
			// Another node serves the folder now and may have read
			// the copies made so far: they are its to keep, not this
			// node's to remove.
			return CopyResult{}, err
		}
		err := placeFile(from.path(old), to.path(msg), filepath.Join(to.dir, "tmp"))
		if err != nil {
			// COPY fails as a whole (RFC 9051 §6.4.7): the copies
			// made so far go, or they would appear at the next start.
			for _, c := range added {
				os.Remove(to.path(c))
			}
			return CopyResult{}, fmt.Errorf("store: account %s: copy: %w", accountID, err)
		}
		to.next++
		added = append(added, msg)
		res.Source = append(res.Source, uid)
		res.Dest = append(res.Dest, msg.uid)
	}
	if len(added) == 0 {
		return res, nil
	}

	// Copies are linked into cur/; sync it before reporting success.
	if err := syncDir(filepath.Join(to.dir, "cur")); err != nil {
		return res, err
	}
	return res, to.addMessages(ctx, added)
}

// addMessages puts messages already in place into the index.
func (m *mailbox) addMessages(ctx context.Context, added []*message) error {
	kw := false
	for _, msg := range added {
		m.msgs = append(m.msgs, msg)
		kw = kw || len(msg.flags.keywords) > 0
		m.notify(Change{Kind: Added, UID: msg.uid,
			Flags: msg.flags.list(), Origin: originOf(ctx)})
	}
	if kw {
		return m.saveKeywords()
	}
	return nil
}

// Move moves messages to another mailbox (RFC 6851): they get new UIDs
// there and are expunged here.
func (s *Store) Move(ctx context.Context, accountID, src string, uids []uint32, dst string) (CopyResult, error) {
	a, from, to, err := s.lockPair(ctx, accountID, src, dst)
	if err != nil {
		return CopyResult{}, err
	}
	defer a.mu.Unlock()
	return s.moveLocked(ctx, a, from, to, uids)
}

// moveLocked moves messages between mailboxes of a locked account.
func (s *Store) moveLocked(ctx context.Context, a *account, from, to *mailbox, uids []uint32) (CopyResult, error) {
	res := CopyResult{UIDValidity: to.validity}

	// UIDNEXT is recorded before a file leaves, so no UID comes back.
	if from.next != from.savedNext {
		if err := from.saveState(); err != nil {
			return res, err
		}
	}
	if err := from.recordFloor(); err != nil {
		return res, err
	}

	var moved, added []*message
	for _, uid := range sortedUIDs(uids) {
		i := from.find(uid)
		if i < 0 {
			continue
		}
		old := from.msgs[i]
		msg := &message{uid: to.next, unique: old.unique,
			inCur: true, flags: old.flags}
		msg.name = old.name
		msg.name.uid, msg.name.validity = msg.uid, to.validity
		msg.name.info, msg.name.flags = true, old.flags.letters
		if err := s.fence.check(); err != nil {
			// Another node serves the folder now; this node's index
			// is dropped when it next takes the lease.
			return res, err
		}
		if err := os.Rename(from.path(old), to.path(msg)); err != nil {
			// The files moved so far are in to's folder: the index
			// must say so on both sides, or they vanish from view
			// until the next start.
			s.finishMove(ctx, from, moved)
			to.addMessages(ctx, added)
			return res, fmt.Errorf("store: account %s: move: %w", a.id, err)
		}
		to.next++
		moved = append(moved, old)
		added = append(added, msg)
		res.Source = append(res.Source, uid)
		res.Dest = append(res.Dest, msg.uid)
	}
	if len(moved) == 0 {
		return res, nil
	}

	// Sync the new entries and the removed ones before answering.
	for _, d := range []string{filepath.Join(to.dir, "cur"),
		filepath.Join(from.dir, "new"), filepath.Join(from.dir, "cur")} {
		if err := syncDir(d); err != nil {
			return res, err
		}
	}
	if err := s.finishMove(ctx, from, moved); err != nil {
		return res, err
	}
	return res, to.addMessages(ctx, added)
}

// finishMove drops moved or expunged messages from the index.
func (s *Store) finishMove(ctx context.Context, m *mailbox, gone []*message) error {
	if len(gone) == 0 {
		return nil
	}
	kw := false
	for _, msg := range gone {
		i := m.find(msg.uid)
		if i < 0 {
			continue
		}
		m.msgs = slices.Delete(m.msgs, i, i+1)
		if m.delivered[msg.unique] == msg.uid {
			delete(m.delivered, msg.unique)
		}
		kw = kw || len(msg.flags.keywords) > 0
		m.notify(Change{Kind: Expunged, UID: msg.uid, Origin: originOf(ctx)})
	}
	if kw {
		return m.saveKeywords()
	}
	return nil
}

// Expunge removes the messages marked \Deleted, only those among uids
// when uids is not nil (UID EXPUNGE, RFC 4315 §2.1), and answers the UIDs
// removed.
func (s *Store) Expunge(ctx context.Context, accountID, mailbox string, uids []uint32) ([]uint32, error) {
	a, err := s.lockAccount(ctx, accountID)
	if err != nil {
		return nil, err
	}
	defer a.mu.Unlock()
	m, err := a.source(ctx, mailbox)
	if err != nil {
		return nil, err
	}

	// A set, not a scan of uids per message: UID EXPUNGE 1:* in a
	// mailbox of 100,000 messages would otherwise take 10^10 steps
	// with the account locked.
	var only map[uint32]bool
	if uids != nil {
		only = make(map[uint32]bool, len(uids))
		for _, uid := range uids {
			only[uid] = true
		}
	}
	var gone []*message
	for _, msg := range m.msgs {
		if !msg.flags.has(FlagDeleted) {
			continue
		}
		if only != nil && !only[msg.uid] {
			continue
		}
		gone = append(gone, msg)
	}
	if len(gone) == 0 {
		return nil, nil
	}

	// UIDNEXT is recorded before a file goes, so no UID comes back.
	if m.next != m.savedNext {
		if err := m.saveState(); err != nil {
			return nil, err
		}
	}
	if err := m.recordFloor(); err != nil {
		return nil, err
	}
	var out []uint32
	var removed []*message
	for _, msg := range gone {
		if err := s.fence.check(); err != nil {
			return out, err
		}
		err := os.Remove(m.path(msg))
		if err != nil && !isNotExist(err) {
			s.finishMove(ctx, m, removed)
			return out, fmt.Errorf("store: account %s: expunge: %w", accountID, err)
		}
		removed = append(removed, msg)
		out = append(out, msg.uid)
	}
	for _, d := range []string{"new", "cur"} {
		if err := syncDir(filepath.Join(m.dir, d)); err != nil {
			return out, err
		}
	}
	return out, s.finishMove(ctx, m, removed)
}

// sortedUIDs answers uids in ascending order without repeats.
func sortedUIDs(uids []uint32) []uint32 {
	l := slices.Clone(uids)
	slices.Sort(l)
	return slices.Compact(l)
}

// lockPair locks the account and answers the source and destination
// mailboxes of a copy or move. On error the account is unlocked.
func (s *Store) lockPair(ctx context.Context, accountID, src, dst string) (*account, *mailbox, *mailbox, error) {
	a, err := s.lockAccount(ctx, accountID)
	if err != nil {
		return nil, nil, nil, err
	}
	from, err := a.source(ctx, src)
	if err == nil {
		var to *mailbox
		if to, err = a.mailbox(dst); err == nil {
			return a, from, to, nil
		}
	}
	a.mu.Unlock()
	return nil, nil, nil, err
}
