// Package queue keeps every accepted message on disk until each of its
// recipients has it, and hands it to a Transport on a retry schedule.
//
// # Contract
//
// Enqueue returns only when the message and its record are written,
// synced, and their folder synced: the SMTP server answers 250 after
// that, so an acknowledged message survives kill -9 and power loss.
// When Enqueue fails nothing of the message is left that would ever be
// delivered, and the SMTP client is told to try again (451).
//
// Each recipient has its own state:
//
//   - pending: not yet tried, or due again now;
//   - deferred: the last attempt failed temporarily; the attempt count
//     and the time of the next attempt are recorded;
//   - delivered: the transport answered 250 for it;
//   - failed: the transport answered a permanent error (5xx), or the
//     recipient stayed deferred longer than the give-up time; the last
//     reply is recorded.
//
// A Transport answers one error per recipient. An error marked with
// Permanent fails that recipient at once; every other error (a refused
// connection, a timeout, a 4xx reply, a damaged answer) is temporary and
// the recipient is tried again after the next delay of the schedule.
// The default schedule waits 1m, 5m, 15m, 30m and 1h, then every hour,
// and gives up 5 days after the message arrived. Only the recipients
// still due take part in an attempt; the others are not sent again.
//
// Delivery is at least once. A crash after the transport stored a
// message and before its record says so delivers it again after the
// restart; the LMTP hop carries the queue id so the store drops the
// second copy (see package lmtp), which makes delivery exactly once end
// to end.
//
// # Notices
//
// A recipient given up on is recorded as failed and logged, and the
// Notifier, when one is set, is told. A Notifier that is a Reporter too
// is told once per attempt of all the recipients that failed in it, and
// once per message of the recipients still deferred when the message
// has waited Config.DelayNotice (4 hours unless set); package dsn turns
// these into delivery status notifications to the sender. Failed
// messages stay in the queue until an operator deletes or retries them.
//
// Every time the queue reads comes from Config.Now, so a test can move
// the clock past a give-up or a delay and call Wake.
//
// # Layout
//
//	<dir>/
//	  lock                 flock(2) held by the process that runs the queue
//	  tmp/                 files being written; emptied at start
//	  spool/<id>.msg       the message bytes, written once
//	  spool/<id>.rec       the envelope and per-recipient state
//	  damaged/             records and messages that failed their checks
//	  control/<n>.cmd      a command from `egret queue` to the running queue
//	  control/<n>.out      the running queue's answer to it
//
// A record file is one header line, "egret-queue-record 1 <length>
// <sha256>", then that many bytes of JSON whose SHA-256 is given. The
// record holds the message's size and SHA-256 too. A record that fails
// its checks is moved to damaged/ and logged, never delivered; a message
// whose size or digest differs from its record is never handed over as
// whole (the transport sees a read error before the end and must abandon
// the transaction).
//
// # Durability
//
// Enqueue writes both files under tmp/, syncs each, renames both into
// spool/, syncs spool/, and only then reports the message queued. A
// crash before that last sync may leave a message file without its
// record, or a record without its message file; both are leftovers of
// a message that was never acknowledged, and are removed at start. A
// state change writes a new record the same way (write, sync, rename,
// sync folder) before the queue acts on it. A message whose recipients
// are all delivered loses its record first, then its message file.
//
// # Operating on a running queue
//
// Only the process holding the lock writes records. `egret queue list`
// and `show` read records directly: renames make every read see a whole
// record. `hold`, `release`, `retry` and `delete` take the lock when no
// server holds it and act on the files themselves; otherwise they drop
// a command file into control/, which the running queue applies within
// a second and answers in a .out file.
package queue
