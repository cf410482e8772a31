package mailview

import (
	"context"
	"errors"
	"fmt"

	"github.com/egretair/egret/mailcore/store"
)

// Folder is a mailbox with its counts.
type Folder struct {
	Name   string `json:"name"`
	Total  int    `json:"total"`
	Unread int    `json:"unread"`
	Size   int64  `json:"size"`
}

// Facts is what an OA portal shows of a mailbox.
type Facts struct {
	Unread     int        `json:"unread"`
	Total      int        `json:"total"`
	SizeBytes  int64      `json:"size_bytes"`
	QuotaBytes int64      `json:"quota_bytes"`
	Folders    []Folder   `json:"folders"`
	Latest     []Envelope `json:"latest"`
}

// MaxLatest bounds how many of the latest messages Facts answers.
const MaxLatest = 50

func isNoMessage(err error) bool { return errors.Is(err, store.ErrNoMessage) }

// Folders answers every mailbox of the account with its counts, INBOX
// first.
func (r *Reader) Folders(ctx context.Context, accountID string) ([]Folder, error) {
	boxes, err := r.Store.Summary(ctx, accountID)
	if err != nil {
		return nil, fmt.Errorf("mailview: account %s: %w", accountID, err)
	}
	out := make([]Folder, len(boxes))
	for i, b := range boxes {
		out[i] = Folder{Name: b.Name, Total: b.Total, Unread: b.Unseen, Size: b.Size}
	}
	return out, nil
}

// Facts answers the account's counts and the latest messages of its
// INBOX, newest first; latest is clamped to [0, MaxLatest]. Only the
// latest messages' headers are read, so the cost hardly grows with the
// mailbox.
func (r *Reader) Facts(ctx context.Context, accountID string, quota int64, latest int) (Facts, error) {
	folders, err := r.Folders(ctx, accountID)
	if err != nil {
		return Facts{}, err
	}
	f := Facts{Folders: folders, QuotaBytes: quota, Latest: []Envelope{}}
	for _, b := range folders {
		f.Total += b.Total
		f.Unread += b.Unread
		f.SizeBytes += b.Size
	}
	latest = min(max(latest, 0), MaxLatest)
	if latest == 0 {
		return f, nil
	}
	page, err := r.Page(ctx, accountID, store.Inbox, 0, latest)
	if err != nil {
		return Facts{}, err
	}
	f.Latest = page.Messages
	return f, nil
}

// Page is one page of a mailbox's message list, newest first.
type Page struct {
	Mailbox  string
	Total    int
	Number   int // from 0
	Pages    int
	Messages []Envelope
}

// Page answers page number n (from 0) of size messages, newest (highest
// UID) first. A page past the end is empty.
func (r *Reader) Page(ctx context.Context, accountID, mailbox string, n, size int) (Page, error) {
	size = max(size, 1)
	n = max(n, 0)
	snap, total, err := r.Store.Tail(ctx, accountID, mailbox, n*size, size)
	if err != nil {
		return Page{}, fmt.Errorf("mailview: account %s: %w", accountID, err)
	}
	p := Page{Mailbox: snap.Mailbox, Total: total, Number: n,
		Pages: max((total+size-1)/size, 1)}
	msgs := snap.Messages
	p.Messages, err = r.envelopes(ctx, accountID, snap.Mailbox, snap.UIDValidity, msgs)
	return p, err
}
