package imapd

import (
	"bufio"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"github.com/egretair/egret/mailcore/store"
)

// maxSearchText bounds the decoded text of one message that BODY and
// TEXT look through.
//
// Not yet: text beyond the first 4 MB of a message is not searched, and
// every such search reads the message files; there is no text index.
const maxSearchText = 4 << 20

// Search answers the messages matching the criteria (RFC 9051 §6.4.4).
// Header and body text is compared without regard to case after decoding
// MIME encoded words, transfer encodings and charsets such as GBK and
// Big5.
func (sess *session) Search(kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (*imap.SearchData, error) {
	sel := sess.sel
	targets := sel.resolve(imap.SeqSet{{Start: 1, Stop: 0}})
	snap, err := sess.srv.store.Messages(sel.ctx, sess.acct.ID, sel.mailbox())
	if err != nil {
		return nil, sess.storeError(err, false)
	}
	info := make(map[uint32]store.Message, len(snap.Messages))
	for _, m := range snap.Messages {
		info[m.UID] = m
	}
	var maxSeq, maxUID uint32
	if n := len(targets); n > 0 {
		maxSeq, maxUID = targets[n-1].seq, targets[n-1].uid
	}
	criteria = staticCriteria(criteria, maxSeq, maxUID)

	data := &imap.SearchData{}
	var seqs imap.SeqSet
	var uids imap.UIDSet
	for _, t := range targets {
		m, ok := info[t.uid]
		if !ok {
			continue
		}
		c := &candidate{sess: sess, t: t, m: m}
		if !c.match(criteria) {
			continue
		}
		num := t.seq
		if kind == imapserver.NumKindUID {
			num = t.uid
		}
		seqs.AddNum(t.seq)
		uids.AddNum(imap.UID(t.uid))
		if data.Count == 0 || num < data.Min {
			data.Min = num
		}
		data.Max = max(data.Max, num)
		data.Count++
	}
	if kind == imapserver.NumKindUID {
		data.All = uids
	} else {
		data.All = seqs
	}
	return data, nil
}

// staticCriteria answers a copy of the criteria with "*" resolved.
func staticCriteria(c *imap.SearchCriteria, maxSeq, maxUID uint32) *imap.SearchCriteria {
	out := *c
	out.SeqNum = nil
	for _, s := range c.SeqNum {
		out.SeqNum = append(out.SeqNum, staticSeqSet(s, maxSeq))
	}
	out.UID = nil
	for _, s := range c.UID {
		out.UID = append(out.UID, staticUIDSet(s, maxUID))
	}
	out.Not = nil
	for i := range c.Not {
		out.Not = append(out.Not, *staticCriteria(&c.Not[i], maxSeq, maxUID))
	}
	out.Or = nil
	for _, pair := range c.Or {
		out.Or = append(out.Or, [2]imap.SearchCriteria{
			*staticCriteria(&pair[0], maxSeq, maxUID),
			*staticCriteria(&pair[1], maxSeq, maxUID),
		})
	}
	return &out
}

// candidate is a message being matched; its content is read only when a
// criterion needs it, and once.
type candidate struct {
	sess *session
	t    target
	m    store.Message

	loaded bool
	header gomessage.Header
	// headerText and body are decoded and in lower case.
	headerText string
	body       string
}

// match reports whether the message meets every criterion.
func (c *candidate) match(cr *imap.SearchCriteria) bool {
	for _, set := range cr.SeqNum {
		if !set.Contains(c.t.seq) {
			return false
		}
	}
	for _, set := range cr.UID {
		if !set.Contains(imap.UID(c.t.uid)) {
			return false
		}
	}
	for _, f := range cr.Flag {
		if !hasFlag(c.m.Flags, string(f)) {
			return false
		}
	}
	for _, f := range cr.NotFlag {
		if hasFlag(c.m.Flags, string(f)) {
			return false
		}
	}
	if cr.Larger > 0 && c.m.Size <= cr.Larger {
		return false
	}
	if cr.Smaller > 0 && c.m.Size >= cr.Smaller {
		return false
	}
	// RFC 9051 §6.4.4: dates compare without time and time zone.
	if !cr.Since.IsZero() && day(c.m.InternalDate).Before(day(cr.Since)) {
		return false
	}
	if !cr.Before.IsZero() && !day(c.m.InternalDate).Before(day(cr.Before)) {
		return false
	}
	if !cr.SentSince.IsZero() || !cr.SentBefore.IsZero() {
		c.load()
		mh := mail.Header{Header: c.header}
		sent, err := mh.Date()
		if err != nil || sent.IsZero() {
			return false
		}
		if !cr.SentSince.IsZero() && day(sent).Before(day(cr.SentSince)) {
			return false
		}
		if !cr.SentBefore.IsZero() && !day(sent).Before(day(cr.SentBefore)) {
			return false
		}
	}
	for _, hf := range cr.Header {
		if !c.headerHas(hf.Key, hf.Value) {
			return false
		}
	}
	for _, s := range cr.Body {
		c.load()
		if !strings.Contains(c.body, strings.ToLower(s)) {
			return false
		}
	}
	for _, s := range cr.Text {
		c.load()
		s = strings.ToLower(s)
		if !strings.Contains(c.headerText, s) && !strings.Contains(c.body, s) {
			return false
		}
	}
	for i := range cr.Not {
		if c.match(&cr.Not[i]) {
			return false
		}
	}
	for _, pair := range cr.Or {
		if !c.match(&pair[0]) && !c.match(&pair[1]) {
			return false
		}
	}
	return true
}

// day answers the calendar date of t, at midnight UTC.
func day(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// headerHas reports whether a field named key contains value; an empty
// value matches any message with the field (RFC 9051 §6.4.4).
func (c *candidate) headerHas(key, value string) bool {
	c.load()
	value = strings.ToLower(value)
	fields := c.header.FieldsByKey(key)
	for fields.Next() {
		text, err := fields.Text()
		if err != nil {
			text = fields.Value()
		}
		if strings.Contains(strings.ToLower(text), value) {
			return true
		}
	}
	return false
}

// load reads and decodes the message's header and text.
func (c *candidate) load() {
	if c.loaded {
		return
	}
	c.loaded = true
	s := c.sess
	f, _, err := s.srv.store.OpenMessage(s.sel.ctx, s.acct.ID, s.sel.mailbox(), c.t.uid)
	if err != nil {
		return
	}
	defer f.Close()

	br := bufio.NewReader(f)
	h, err := textproto.ReadHeader(br)
	if err != nil {
		return
	}
	c.header = gomessage.Header{Header: h}
	c.headerText = strings.ToLower(headerText(c.header))

	var body strings.Builder
	ent, err := gomessage.New(c.header, br)
	if ent != nil && (err == nil || gomessage.IsUnknownCharset(err) ||
		gomessage.IsUnknownEncoding(err)) {
		collectText(ent, &body, 0)
	}
	c.body = strings.ToLower(body.String())
}

// headerText answers all fields of a header, decoded, one a line.
func headerText(h gomessage.Header) string {
	var b strings.Builder
	fields := h.Fields()
	for fields.Next() {
		text, err := fields.Text()
		if err != nil {
			text = fields.Value()
		}
		b.WriteString(fields.Key())
		b.WriteString(": ")
		b.WriteString(text)
		b.WriteString("\n")
	}
	return b.String()
}

// collectText appends the decoded text parts of an entity to b,
// descending into multiparts and attached messages.
func collectText(e *gomessage.Entity, b *strings.Builder, depth int) {
	if depth > 10 || b.Len() >= maxSearchText {
		return
	}
	if mr := e.MultipartReader(); mr != nil {
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				return
			}
			if err != nil && !gomessage.IsUnknownCharset(err) &&
				!gomessage.IsUnknownEncoding(err) {
				return
			}
			collectText(p, b, depth+1)
		}
	}
	mt, _, _ := e.Header.ContentType()
	switch {
	case mt == "" || strings.HasPrefix(mt, "text/"):
		io.Copy(b, io.LimitReader(e.Body, int64(maxSearchText-b.Len())))
		b.WriteString("\n")
	case mt == "message/rfc822" || mt == "message/global":
		inner, err := gomessage.Read(e.Body)
		if inner == nil || (err != nil && !gomessage.IsUnknownCharset(err) &&
			!gomessage.IsUnknownEncoding(err)) {
			return
		}
		b.WriteString(headerText(inner.Header))
		collectText(inner, b, depth+1)
	}
}

// equalFold compares flags without regard to case.
func equalFold(a, b string) bool {
	return strings.EqualFold(a, b)
}
