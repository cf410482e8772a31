package mailview

import (
	"bufio"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decodes GB18030, Big5, ...
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"github.com/egretair/egret/mailcore/store"
)

// Envelope is what a message list shows of a message.
type Envelope struct {
	UID uint32 `json:"uid"`
	// From is the sender's display name, or address without one.
	From        string    `json:"from"`
	FromAddress string    `json:"from_address"`
	Subject     string    `json:"subject"`
	Date        time.Time `json:"date"`
	Unread      bool      `json:"unread"`
	Size        int64     `json:"size"`
}

// headerFacts is the cached part of an envelope: what the file says.
type headerFacts struct {
	from, fromAddr, subject string
	date                    time.Time
}

type cacheKey struct {
	account, mailbox string
	validity, uid    uint32
}

// maxCached bounds the cache; at about 200 bytes an entry it stays
// near 20 MB.
const maxCached = 100_000

// Reader answers envelopes and facts from a store.
type Reader struct {
	Store *store.Store

	mu    sync.Mutex
	cache map[cacheKey]headerFacts
}

// envelopes answers the envelopes of msgs, from the cache or the files.
func (r *Reader) envelopes(ctx context.Context, accountID, mailbox string, validity uint32, msgs []store.Message) ([]Envelope, error) {
	out := make([]Envelope, 0, len(msgs))
	for _, m := range msgs {
		k := cacheKey{accountID, mailbox, validity, m.UID}
		r.mu.Lock()
		h, ok := r.cache[k]
		r.mu.Unlock()
		if !ok {
			var err error
			h, err = r.read(ctx, accountID, mailbox, m.UID)
			if err != nil {
				return nil, err
			}
			r.mu.Lock()
			if r.cache == nil || len(r.cache) >= maxCached {
				// Dropping everything is crude and rare: a full
				// cache refills with the pages people look at.
				r.cache = make(map[cacheKey]headerFacts)
			}
			r.cache[k] = h
			r.mu.Unlock()
		}
		out = append(out, Envelope{UID: m.UID, From: h.from, FromAddress: h.fromAddr,
			Subject: h.subject, Date: h.date, Size: m.Size,
			Unread: !slices.Contains(m.Flags, store.FlagSeen)})
		if out[len(out)-1].Date.IsZero() {
			out[len(out)-1].Date = m.InternalDate
		}
	}
	return out, nil
}

// read parses a message's header. A message expunged meanwhile, or one
// whose header does not parse, gets an empty envelope rather than
// failing the whole list.
func (r *Reader) read(ctx context.Context, accountID, mailbox string, uid uint32) (headerFacts, error) {
	f, _, err := r.Store.OpenMessage(ctx, accountID, mailbox, uid)
	if err != nil {
		if isNoMessage(err) {
			return headerFacts{}, nil
		}
		return headerFacts{}, fmt.Errorf("mailview: account %s: %w", accountID, err)
	}
	defer f.Close()
	hdr, err := textproto.ReadHeader(bufio.NewReaderSize(f, 8<<10))
	if err != nil {
		return headerFacts{subject: "(unreadable header)"}, nil
	}
	return parseHeader(mail.Header{Header: message.Header{Header: hdr}}), nil
}

// parseHeader decodes the fields an envelope shows.
func parseHeader(h mail.Header) headerFacts {
	var out headerFacts
	if s, err := h.Subject(); err == nil {
		out.subject = s
	} else {
		out.subject = h.Get("Subject")
	}
	if from, err := h.AddressList("From"); err == nil && len(from) > 0 {
		out.fromAddr = from[0].Address
		out.from = from[0].Name
	} else if raw := h.Get("From"); raw != "" {
		out.from = raw
	}
	if out.from == "" {
		out.from = out.fromAddr
	}
	out.subject = clean(out.subject)
	out.from = clean(out.from)
	if d, err := h.Date(); err == nil {
		out.date = d
	}
	return out
}

// clean drops control characters, which a hostile header may carry.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
