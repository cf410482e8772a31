package imapd

import (
	"context"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/egretair/egret/mailcore/store"
)

// permanentFlags are the flags a message can keep (RFC 9051 §7.1).
var permanentFlags = []imap.Flag{
	imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged,
	imap.FlagDeleted, imap.FlagDraft, imap.FlagForwarded,
}

// selected is the session's view of its selected mailbox.
//
// uids is the mailbox as the store has it, kept current by the store's
// watch; the client learns of changes through the tracker, so its
// sequence numbers lag until the next poll. The tracker translates
// between the two. The store calls apply with its account locked; no
// store call is made while mu is held.
type selected struct {
	readOnly bool
	validity uint32
	origin   *session
	// ctx is the session's context bound to this mailbox's
	// UIDVALIDITY: a store call made with it cannot reach another
	// mailbox that took the name after a RENAME or DELETE elsewhere.
	ctx context.Context

	mu      sync.Mutex
	name    string // follows renames made by other sessions
	uids    []uint32
	uidNext uint32
	mbox    *imapserver.MailboxTracker
	tracker *imapserver.SessionTracker
	cancel  func()
	// wake, while the session IDLEs, is signalled after each change
	// queued for the client.
	wake chan struct{}
}

// apply records one store change and queues it for the client.
func (sel *selected) apply(c store.Change) {
	sel.mu.Lock()
	defer sel.mu.Unlock()
	if sel.wake != nil {
		defer func() {
			select {
			case sel.wake <- struct{}{}:
			default:
			}
		}()
	}
	switch c.Kind {
	case store.Added:
		sel.uids = append(sel.uids, c.UID)
		sel.uidNext = max(sel.uidNext, c.UID+1)
		sel.mbox.QueueNumMessages(uint32(len(sel.uids)))
	case store.Expunged:
		if i := sel.indexLocked(c.UID); i >= 0 {
			sel.uids = append(sel.uids[:i], sel.uids[i+1:]...)
			sel.mbox.QueueExpunge(uint32(i + 1))
		}
	case store.Renamed:
		sel.name = c.Mailbox
	case store.FlagsChanged:
		// The session answers its own STORE and FETCH itself.
		if c.Origin == sel.origin {
			return
		}
		if i := sel.indexLocked(c.UID); i >= 0 {
			sel.mbox.QueueMessageFlags(uint32(i+1), imap.UID(c.UID), toFlags(c.Flags), nil)
		}
	}
}

// mailbox answers the selected mailbox's current name.
func (sel *selected) mailbox() string {
	sel.mu.Lock()
	defer sel.mu.Unlock()
	return sel.name
}

// indexLocked answers the position of uid in the view, or -1.
func (sel *selected) indexLocked(uid uint32) int {
	lo, hi := 0, len(sel.uids)
	for lo < hi {
		mid := (lo + hi) / 2
		switch {
		case sel.uids[mid] == uid:
			return mid
		case sel.uids[mid] < uid:
			lo = mid + 1
		default:
			hi = mid
		}
	}
	return -1
}

// target is a message a command addresses: its UID and the sequence
// number the client knows it by.
type target struct {
	uid uint32
	seq uint32
}

// resolve answers the messages of numSet that the client can see, in
// order. "*" stands for the last message or the highest UID.
func (sel *selected) resolve(numSet imap.NumSet) []target {
	sel.mu.Lock()
	defer sel.mu.Unlock()
	var out []target
	switch set := numSet.(type) {
	case imap.SeqSet:
		set = staticSeqSet(set, uint32(len(sel.uids)))
		for i, uid := range sel.uids {
			seq := sel.tracker.EncodeSeqNum(uint32(i + 1))
			if seq != 0 && set.Contains(seq) {
				out = append(out, target{uid: uid, seq: seq})
			}
		}
	case imap.UIDSet:
		var last uint32
		if n := len(sel.uids); n > 0 {
			last = sel.uids[n-1]
		}
		set = staticUIDSet(set, last)
		for i, uid := range sel.uids {
			seq := sel.tracker.EncodeSeqNum(uint32(i + 1))
			if seq != 0 && set.Contains(imap.UID(uid)) {
				out = append(out, target{uid: uid, seq: seq})
			}
		}
	}
	return out
}

// staticSeqSet replaces "*" (zero) with max.
func staticSeqSet(set imap.SeqSet, max uint32) imap.SeqSet {
	out := make(imap.SeqSet, len(set))
	for i, r := range set {
		if r.Start == 0 {
			r.Start = max
		}
		if r.Stop == 0 {
			r.Stop = max
		}
		if r.Start > r.Stop {
			r.Start, r.Stop = r.Stop, r.Start
		}
		out[i] = r
	}
	return out
}

// staticUIDSet replaces "*" (zero) with max.
func staticUIDSet(set imap.UIDSet, max uint32) imap.UIDSet {
	out := make(imap.UIDSet, len(set))
	for i, r := range set {
		if r.Start == 0 {
			r.Start = imap.UID(max)
		}
		if r.Stop == 0 {
			r.Stop = imap.UID(max)
		}
		if r.Start > r.Stop {
			r.Start, r.Stop = r.Stop, r.Start
		}
		out[i] = r
	}
	return out
}

// toFlags converts store flags to IMAP flags.
func toFlags(l []string) []imap.Flag {
	out := make([]imap.Flag, len(l))
	for i, f := range l {
		out[i] = imap.Flag(f)
	}
	return out
}

// fromFlags converts IMAP flags to store flags.
func fromFlags(l []imap.Flag) []string {
	out := make([]string, len(l))
	for i, f := range l {
		out[i] = string(f)
	}
	return out
}

// Select opens a mailbox, read-only for EXAMINE.
func (sess *session) Select(name string, options *imap.SelectOptions) (*imap.SelectData, error) {
	sess.unselect()
	sel := &selected{origin: sess, readOnly: options != nil && options.ReadOnly}

	// Hold the view until it is set up; store changes wait for it.
	sel.mu.Lock()
	snap, cancel, err := sess.srv.store.Watch(sess.ctx, sess.acct.ID, name, sel.apply)
	if err != nil {
		sel.mu.Unlock()
		return nil, sess.storeError(err, false)
	}
	sel.name, sel.validity, sel.uidNext, sel.cancel =
		snap.Mailbox, snap.UIDValidity, snap.UIDNext, cancel
	sel.ctx = store.WithUIDValidity(sess.ctx, snap.UIDValidity)
	firstUnseen := uint32(0)
	for i, m := range snap.Messages {
		sel.uids = append(sel.uids, m.UID)
		if firstUnseen == 0 && !hasFlag(m.Flags, store.FlagSeen) {
			firstUnseen = uint32(i + 1)
		}
	}
	sel.mbox = imapserver.NewMailboxTracker(uint32(len(sel.uids)))
	sel.tracker = sel.mbox.NewSession()
	sel.mu.Unlock()
	sess.selMu.Lock()
	sess.sel = sel
	sess.selMu.Unlock()

	var list *imap.ListData
	if sess.conn.EnabledCaps().Has(imap.CapIMAP4rev2) {
		// RFC 9051 §6.3.2: an IMAP4rev2 client is told the name.
		list = &imap.ListData{Delim: store.Delim, Mailbox: snap.Mailbox}
	}
	return &imap.SelectData{
		List:              list,
		Flags:             permanentFlags,
		PermanentFlags:    append(append([]imap.Flag{}, permanentFlags...), imap.FlagWildcard),
		NumMessages:       uint32(len(snap.Messages)),
		FirstUnseenSeqNum: firstUnseen,
		UIDNext:           imap.UID(snap.UIDNext),
		UIDValidity:       snap.UIDValidity,
	}, nil
}

// hasFlag reports whether l holds f, compared without case.
func hasFlag(l []string, f string) bool {
	for _, x := range l {
		if equalFold(x, f) {
			return true
		}
	}
	return false
}

// Unselect leaves the selected mailbox.
func (sess *session) Unselect() error {
	sess.unselect()
	return nil
}

// unselect stops watching the selected mailbox.
func (sess *session) unselect() {
	sess.selMu.Lock()
	sel := sess.sel
	sess.sel = nil
	sess.selMu.Unlock()
	if sel == nil {
		return
	}
	sel.cancel()
	sel.tracker.Close()
}

// Poll writes the changes the client has not seen.
func (sess *session) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	if sess.sel == nil {
		return nil
	}
	return sess.sel.tracker.Poll(w, allowExpunge)
}

// Idle writes changes as they happen until stop is closed.
func (sess *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	sess.selMu.Lock()
	sel := sess.sel
	sess.selMu.Unlock()
	if sel == nil {
		<-stop
		return nil
	}

	// go-imap's SessionTracker.Idle listens only from the moment it
	// starts, after the continuation request went out: a change made
	// in between stayed unsent until the next one. Here the wake-up
	// is in place before the first poll, so nothing falls between.
	wake := make(chan struct{}, 1)
	sel.mu.Lock()
	sel.wake = wake
	sel.mu.Unlock()
	defer func() {
		sel.mu.Lock()
		sel.wake = nil
		sel.mu.Unlock()
	}()
	for {
		if err := sel.tracker.Poll(w, true); err != nil {
			return err
		}
		select {
		case <-wake:
		case <-stop:
			return nil
		}
	}
}

// readOnlyError refuses a change in an EXAMINEd mailbox.
var readOnlyError = &imap.Error{
	Type: imap.StatusResponseTypeNo,
	Code: imap.ResponseCodeCannot,
	Text: "Mailbox is read-only",
}

// Expunge removes messages marked \Deleted; the EXPUNGE responses come
// from the poll after the command.
func (sess *session) Expunge(w *imapserver.ExpungeWriter, uids *imap.UIDSet) error {
	sel := sess.sel
	if sel.readOnly {
		// CLOSE calls Expunge with an empty writer; on an EXAMINEd
		// mailbox it only closes (RFC 9051 §6.4.1).
		if *w == (imapserver.ExpungeWriter{}) {
			return nil
		}
		return readOnlyError
	}
	var only []uint32
	if uids != nil {
		only = []uint32{}
		for _, t := range sel.resolve(*uids) {
			only = append(only, t.uid)
		}
		if len(only) == 0 {
			return nil
		}
	}
	_, err := sess.srv.store.Expunge(sel.ctx, sess.acct.ID, sel.mailbox(), only)
	return sess.storeError(err, false)
}

// Store changes flags and, unless .SILENT, answers the new ones.
func (sess *session) Store(w *imapserver.FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, options *imap.StoreOptions) error {
	sel := sess.sel
	if sel.readOnly {
		return readOnlyError
	}
	targets := sel.resolve(numSet)
	if len(targets) == 0 {
		return nil
	}
	uids := make([]uint32, len(targets))
	seqOf := make(map[uint32]uint32, len(targets))
	for i, t := range targets {
		uids[i] = t.uid
		seqOf[t.uid] = t.seq
	}
	op := map[imap.StoreFlagsOp]store.FlagOp{
		imap.StoreFlagsSet: store.FlagsSet,
		imap.StoreFlagsAdd: store.FlagsAdd,
		imap.StoreFlagsDel: store.FlagsRemove,
	}[flags.Op]
	msgs, err := sess.srv.store.StoreFlags(sel.ctx, sess.acct.ID, sel.mailbox(), uids, op, fromFlags(flags.Flags))
	if err != nil {
		return sess.storeError(err, false)
	}
	if flags.Silent {
		return nil
	}
	_, byUID := numSet.(imap.UIDSet)
	for _, m := range msgs {
		rw := w.CreateMessage(seqOf[m.UID])
		if byUID {
			rw.WriteUID(imap.UID(m.UID))
		}
		rw.WriteFlags(toFlags(m.Flags))
		if err := rw.Close(); err != nil {
			return err
		}
	}
	return nil
}

// copyData converts a store copy result for COPYUID.
func copyData(res store.CopyResult) *imap.CopyData {
	data := &imap.CopyData{UIDValidity: res.UIDValidity}
	for i := range res.Source {
		data.SourceUIDs.AddNum(imap.UID(res.Source[i]))
		data.DestUIDs.AddNum(imap.UID(res.Dest[i]))
	}
	return data
}

// Copy copies messages to another mailbox.
func (sess *session) Copy(numSet imap.NumSet, dest string) (*imap.CopyData, error) {
	sel := sess.sel
	var uids []uint32
	for _, t := range sel.resolve(numSet) {
		uids = append(uids, t.uid)
	}
	res, err := sess.srv.store.CopyWithin(sel.ctx, sess.acct.ID,
		sess.acct.QuotaBytes, sel.mailbox(), uids, dest)
	if err != nil {
		return nil, sess.storeError(err, true)
	}
	if len(res.Source) == 0 {
		return nil, nil
	}
	return copyData(res), nil
}

// Move moves messages to another mailbox (RFC 6851); the EXPUNGE
// responses come from the poll after the command.
func (sess *session) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) error {
	sel := sess.sel
	if sel.readOnly {
		return readOnlyError
	}
	var uids []uint32
	for _, t := range sel.resolve(numSet) {
		uids = append(uids, t.uid)
	}
	res, err := sess.srv.store.Move(sel.ctx, sess.acct.ID, sel.mailbox(), uids, dest)
	if err != nil {
		return sess.storeError(err, true)
	}
	if len(res.Source) == 0 {
		return nil
	}
	return w.WriteCopyData(copyData(res))
}
