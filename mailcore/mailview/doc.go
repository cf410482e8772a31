// Package mailview reads an account's mailboxes for people rather than
// mail clients: folder counts, pages of envelopes (sender, subject,
// date, unread) and the facts an OA portal shows on every page view.
//
// Counts come from the store's in-memory index. Envelopes need the
// message headers, so they are parsed from the files of only the
// messages shown (a page, or the latest N) and kept in a bounded cache
// keyed by account, mailbox, UIDVALIDITY and UID: a message's bytes
// never change under one UID (RFC 9051 §2.3.1.1), so an entry is never
// stale, only evicted.
//
// Subjects and names are decoded from RFC 2047 encoded words in any
// charset go-message knows (GB18030, GBK, Big5, ...), so Chinese
// senders and subjects read as written.
package mailview
