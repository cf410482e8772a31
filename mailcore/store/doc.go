// Package store keeps the messages of every account on disk and answers
// what the SMTP and IMAP servers (and later the API) ask of them.
//
// # Layout
//
// One folder per account, named after the account's stable directory id,
// so a change of address moves nothing. Each mailbox is a Maildir whose
// folder name is the mailbox name with '/', '%', a leading '.' and control
// characters written as %XX:
//
//	<dir>/
//	  fence                              fence number of the serving node
//	  store-id                           the store's id, in a shared folder
//	  tmp/                               spool for deliveries in flight
//	  accounts/<account-id>/
//	    uidvalidity                      last UIDVALIDITY handed out
//	    subscriptions                    subscribed mailbox names, one a line
//	    mailboxes/<escaped-name>/
//	      uidstate                       UIDVALIDITY, UIDNEXT, writer's fence
//	      uidvalidity                    UIDVALIDITY, written once
//	      keywords                       JSON: UID -> keywords
//	      uidfloor.<n>                   empty; UIDNEXT was at least n
//	      tmp/                           files being written
//	      new/U<uid>.<unix>.<unique>,S=<size>,V=<uidvalidity>
//	      cur/U<uid>.<unix>.<unique>,S=<size>,V=<uidvalidity>:2,<flags>
//
// A message file name carries everything the index needs: the IMAP UID,
// the internal date (seconds since 1970), a unique part (for delivered
// messages "d-" and the delivery id, which is how duplicates are dropped),
// the size in bytes, the mailbox's UIDVALIDITY when the UID was given
// (names written before it was recorded lack it and get it at the next
// load), and the system flags as Maildir info letters
// (D \Draft, F \Flagged, P $Forwarded, R \Answered, S \Seen, T \Deleted).
// Delivered mail lands in new/; a message moves to cur/ the first time its
// flags are set. Keywords other than $Forwarded live in the keywords file.
//
// # Index
//
// The files uidstate, uidvalidity (both) and keywords, and the in-memory
// index of an account, are derived data: the index is built from the
// file names when the account is first used, keeping every UID, the
// flags and the UIDVALIDITY, so clients download nothing again. A damaged
// uidstate gives what it still can; the UIDVALIDITY is then taken from
// the mailbox's uidvalidity file, else from the message file names, and
// only for a mailbox with none of the three (so with no messages) is a
// new one handed out. Files dropped into a mailbox by another Maildir
// writer are given the next UIDs at that time.
//
// Login (EnsureAccount) checks the files against the index: what is
// missing, unreadable or out of step is written again from it, before
// the client is answered, and "index rebuilt" is logged with the
// account. RebuildIndex does the same on demand; CheckIndex only reads.
//
// Not yet: keywords other than $Forwarded live only in the keywords
// file; when it is lost they are lost, and the log says so. System
// flags, in the file names, always survive.
//
// # Durability
//
// Deliver and Append return only after the message file is synced, renamed
// or linked into place, and its folder synced. UIDNEXT is written to
// uidstate (synced) before any file leaves a mailbox, and recorded again
// in the name of an empty uidfloor file, which is not index data: so UIDs
// are never reused, not even after an expunge, a restart and the loss of
// the index. Flag changes are
// renames that are not synced: a crash may lose the latest flag change,
// never a message.
//
// # Concurrency
//
// Every operation on an account holds that account's lock, so concurrent
// deliveries and IMAP sessions see a consistent mailbox. Message bytes are
// written before the lock is taken and read from an open file after it is
// released. Watchers registered with Watch are told of every change to a
// mailbox while the lock is held, in the order the changes happen.
//
// # Shared folders
//
// The two members of a back node (an active and a standby) may serve
// one folder in turn. Each opens it with OpenShared, which touches
// nothing on disk and refuses every operation, since Open would clear
// the spool of the member serving. Once a member holds the lease
// (package lease) it calls Take with its fence number: the number goes
// into <dir>/fence before the member serves, and every operation first
// checks that the file holds no higher one, so a former writer that
// wakes up after a pause refuses to write (ErrFenced) even when it
// cannot reach the database. The check is made again with the account
// locked, before the rename or link that makes a change visible: an
// APPEND or a delivery whose bytes took longer to arrive than the
// lease lives stores nothing, and its temporary file goes. Take also
// drops the index held in memory: the other member may have changed
// everything since.
//
// The folder has an id, in <dir>/store-id, written once by the first
// member to serve it, and recorded in the lease (Fence.StoreID). What
// is fatal:
//
//   - a missing or different store-id, when the lease records one:
//     Take refuses (ErrWrongFolder) before it writes anything, since
//     the folder is not the store (a volume not mounted);
//   - a damaged fence file (unreadable, or not a number): Take refuses
//     (ErrFenceFile), since it may hide a newer holder's number; the
//     operator removes the file once no member serves the folder;
//   - a fence file that disappears, or turns unreadable, while the
//     store serves: the store stops at once (ErrFenceFile, Fence.Broken)
//     rather than report a takeover that did not happen.
//
// A missing fence file is not fatal to Take when the store-id matches:
// the folder is the store, and the fence number from the database is
// newer than any holder's before, so Take writes a new file.
//
// # Use
//
//	st, err := store.Open(filepath.Join(data, "mail"), log)
//	res, err := st.Deliver(ctx, queueID, []string{acct.ID}, msg)
//	facts, err := st.Summary(ctx, acct.ID)
//
// The default mailboxes INBOX, Sent, Drafts and Trash are created the
// first time an account is used, by delivery or by login.
package store
