// Package lease decides which member of a logical back node serves its
// store. A logical back (the name accounts.home_node and cluster.backs
// use) may run as two processes over one store folder: the active one
// holds the lease, the standby waits for it to lapse.
//
// # The lease
//
// One row per logical back in the table back_leases:
//
//	name        the logical back
//	holder      the node.name of the member that holds it
//	fence       grows by one at every acquisition
//	expires_at  when the lease lapses, by the database's clock, in UTC
//	store_id    the id of the store folder the back serves, "" for none yet
//
// Acquire and Renew are each one conditional UPDATE judged by
// UTC_TIMESTAMP(6) on the database, never by a node's clock nor by a
// session's time zone, so two nodes whose clocks or time_zone settings
// disagree (or a change to summer time) still agree on who holds the
// lease. Acquire succeeds when the lease has lapsed or is the caller's
// already (a member restarted under the same name takes its lease back
// at once) and takes a new fence number; Renew succeeds only for the
// holder with the fence it was given.
//
// Each member needs a node.name of its own. Two processes under one
// name would take the lease from each other at every poll; a keeper
// that finds the lease taken under its own name while it renews logs
// an error saying so and backs off.
//
// # The store's identity
//
// The store folder has an id of its own (store.Store.ID, the file
// store-id), which the lease row records: the first member to serve
// the back writes it into both, and from then on a member that takes
// the lease serves only a folder holding that id. One whose folder has
// no id (a shared volume not mounted, an empty mount point) or another
// one gives the lease back and logs an error naming the folder. To
// serve a new folder on purpose, empty the row's store_id (the
// runbook gives the statement): the next holder records the id of the
// folder it finds, or gives it one. A restore (scripts/restore) clears
// the rows, starting a new history.
//
// # Failure semantics
//
// A holder that finds another holder, or a higher fence in the store
// folder (see store.Store.Take), stops writing at once and waits as a
// standby. The keeper reads the folder's fence file after every
// renewal (Keeper.Check), so a holder learns of a newer one there even
// while it cannot reach the database and no client asks it anything:
// its sessions are cut and it reports standby within one renewal
// interval of the takeover.
//
// A holder that cannot reach the database keeps serving: no other
// member can take the lease without the database either, and where
// the database is reachable from the other member only (a partition),
// the fence the new holder writes into the shared folder before it
// serves makes the old holder's next change, and its next tick, fail.
//
// A holder whose process was paused (SIGSTOP, a long stall) for longer
// than the lease's lifetime does not write on waking before its next
// renewal has been tried: Keeper.Holding says so, and the store asks it
// before every change, and again, with the account locked, before the
// last rename of a change that read data from a client.
//
// A member that cannot serve the folder (not the store the row names,
// a fence file gone or damaged) gives the lease back at once, so that
// it is not held by a node that cannot serve, and does not try to take
// it again for Keeper.Backoff (ten seconds): the other member, whose
// view of the volume may be sound, gets it meanwhile, and a folder that
// stays broken costs one attempt and one error line every ten seconds.
//
// Not yet: a change that passed its last fence check and is then
// paused between the check and its rename can still land after a new
// holder took over; the window is a few system calls long, with no
// client data read in it, but a pause there has no bound. A store on a
// file system that refuses writes by token (not plain POSIX) would
// close it.
//
// The lease needs MySQL or MariaDB (UTC_TIMESTAMP(6), INTERVAL
// arithmetic): back nodes run on MySQL only.
package lease
