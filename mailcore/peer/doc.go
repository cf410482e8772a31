// Package peer keeps a front node's view of its back nodes: one circuit
// breaker per back (sony/gobreaker), fed by the back's heartbeat and by
// the outcome of real calls to it.
//
// Feeding. Run polls GET /heartbeat on every back each Config.Interval,
// each poll bounded by Config.Timeout; a poll that fails, times out or
// answers other than 200 counts as a failure, one that answers 200 as a
// success. Callers add what they see with Report, under the breaker's
// name Allow answered when the call started: an LMTP delivery that
// could not reach the back, or an IMAP proxy that could not sign in
// there, reports its error; one that got an answer reports nil. Only
// errors that say the back is unwell should be reported: a recipient
// the back refuses is a success for the breaker.
//
// States. A breaker opens after Config.Failures failures in a row. While
// it is open, Allow answers an *UnavailableError, which is temporary:
// the queue keeps the mail and tries again, the IMAP proxy answers NO
// [UNAVAILABLE]. After Config.OpenFor it is half-open: calls are let
// through again, and the first outcome reported (usually the next
// heartbeat) closes it or opens it again. A back that comes back is thus
// used again within OpenFor plus one Interval, without anyone's help.
//
// Pairs. A back may run as two members over one store, an active and a
// standby (see package lease); each member has a breaker of its own,
// and its heartbeat says whether it holds the lease and under which
// fence. Calls for the back go to the member that says it is active,
// with the highest fence among those whose breaker is not open; while
// none is, Allow answers an *UnavailableError for the back as for an
// open breaker. A member that stops answering after a takeover thus
// loses to the new holder at the first heartbeat that reports it,
// before its own breaker opens. A call goes to the member Allow
// answered, and its outcome counts for that member alone, even when
// the other took over while it ran.
//
// Every transition is logged with the peer and counted in
// egret_breaker_transitions_total; egret_breaker_state shows the
// current state, and Status gives it to the front's own heartbeat.
package peer
