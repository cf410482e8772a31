package imapd

import (
	"bufio"
	"io"
	"os"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"

	"github.com/egretair/egret/mailcore/store"
)

// Fetch answers data items of messages (RFC 9051 §6.4.5). A body section
// without the PEEK suffix marks the message \Seen, and the new flags are
// sent with it.
func (sess *session) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	sel := sess.sel
	st := sess.srv.store
	targets := sel.resolve(numSet)
	if len(targets) == 0 {
		return nil
	}
	snap, err := st.Messages(sel.ctx, sess.acct.ID, sel.mailbox())
	if err != nil {
		return sess.storeError(err, false)
	}
	info := make(map[uint32]store.Message, len(snap.Messages))
	for _, m := range snap.Messages {
		info[m.UID] = m
	}

	seen := make(map[uint32]bool)
	if !sel.readOnly && setsSeen(options) {
		var unseen []uint32
		for _, t := range targets {
			if m, ok := info[t.uid]; ok && !hasFlag(m.Flags, store.FlagSeen) {
				unseen = append(unseen, t.uid)
			}
		}
		if len(unseen) > 0 {
			msgs, err := st.StoreFlags(sel.ctx, sess.acct.ID, sel.mailbox(), unseen,
				store.FlagsAdd, []string{store.FlagSeen})
			if err != nil {
				return sess.storeError(err, false)
			}
			for _, m := range msgs {
				info[m.UID] = m
				seen[m.UID] = true
			}
		}
	}

	for _, t := range targets {
		m, ok := info[t.uid]
		if !ok {
			continue // expunged since the client last heard
		}
		if err := sess.fetchOne(w, t, m, options, seen[t.uid]); err != nil {
			return err
		}
	}
	return nil
}

// setsSeen reports whether the fetch reads a body without PEEK.
func setsSeen(options *imap.FetchOptions) bool {
	for _, bs := range options.BodySection {
		if !bs.Peek {
			return true
		}
	}
	for _, bs := range options.BinarySection {
		if !bs.Peek {
			return true
		}
	}
	return false
}

// needsFile reports whether the fetch reads the message's bytes.
func needsFile(options *imap.FetchOptions) bool {
	return options.Envelope || options.BodyStructure != nil ||
		len(options.BodySection) > 0 || len(options.BinarySection) > 0 ||
		len(options.BinarySectionSize) > 0
}

// fetchOne writes the FETCH response of one message.
func (sess *session) fetchOne(w *imapserver.FetchWriter, t target, m store.Message, options *imap.FetchOptions, flagsChanged bool) error {
	var f *os.File
	var size int64
	if needsFile(options) {
		var err error
		f, _, err = sess.srv.store.OpenMessage(sess.sel.ctx, sess.acct.ID, sess.sel.mailbox(), t.uid)
		if err != nil {
			// Expunged meanwhile: the client hears of it at the poll.
			return nil
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		size = fi.Size()
	}

	rw := w.CreateMessage(t.seq)
	if options.UID {
		rw.WriteUID(imap.UID(m.UID))
	}
	if options.Flags || flagsChanged {
		rw.WriteFlags(toFlags(m.Flags))
	}
	if options.RFC822Size {
		rw.WriteRFC822Size(m.Size)
	}
	if options.InternalDate {
		rw.WriteInternalDate(m.InternalDate)
	}
	if options.Envelope {
		f.Seek(0, io.SeekStart)
		h, _ := textproto.ReadHeader(bufio.NewReader(f))
		rw.WriteEnvelope(imapserver.ExtractEnvelope(h))
	}
	if options.BodyStructure != nil {
		f.Seek(0, io.SeekStart)
		rw.WriteBodyStructure(imapserver.ExtractBodyStructure(f))
	}
	for _, bs := range options.BodySection {
		if err := writeBodySection(rw, bs, f, size); err != nil {
			return err
		}
	}
	for _, bs := range options.BinarySection {
		f.Seek(0, io.SeekStart)
		b := imapserver.ExtractBinarySection(f, bs)
		wc := rw.WriteBinarySection(bs, int64(len(b)))
		if _, err := wc.Write(b); err != nil {
			return err
		}
		if err := wc.Close(); err != nil {
			return err
		}
	}
	for _, bss := range options.BinarySectionSize {
		f.Seek(0, io.SeekStart)
		rw.WriteBinarySectionSize(bss, imapserver.ExtractBinarySectionSize(f, bss))
	}
	return rw.Close()
}

// writeBodySection writes one BODY[...] item. The whole message, or a
// range of it, is streamed from the file: an 8 MB attachment is never
// held in memory. Other sections are cut out by go-imap.
func writeBodySection(rw *imapserver.FetchResponseWriter, bs *imap.FetchItemBodySection, f *os.File, size int64) error {
	whole := len(bs.Part) == 0 && bs.Specifier == imap.PartSpecifierNone &&
		len(bs.HeaderFields) == 0 && len(bs.HeaderFieldsNot) == 0
	if whole {
		offset, n := int64(0), size
		if p := bs.Partial; p != nil {
			offset = min(p.Offset, size)
			n = min(p.Size, size-offset)
		}
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			return err
		}
		wc := rw.WriteBodySection(bs, n)
		if _, err := io.CopyN(wc, f, n); err != nil {
			return err
		}
		return wc.Close()
	}

	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	b := imapserver.ExtractBodySection(f, bs)
	wc := rw.WriteBodySection(bs, int64(len(b)))
	if _, err := wc.Write(b); err != nil {
		return err
	}
	return wc.Close()
}
