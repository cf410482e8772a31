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
//	expires_at  when the lease lapses, by the database's clock
//
// Acquire and Renew are each one conditional UPDATE judged by NOW(6) on
// the database, never by a node's clock, so two nodes whose clocks
// disagree still agree on who holds the lease. Acquire succeeds when the
// lease has lapsed or is the caller's already (a member restarted under
// the same name takes its lease back at once) and takes a new fence
// number; Renew succeeds only for the holder with the fence it was
// given.
//
// # Failure semantics
//
// A holder that finds another holder, or a higher fence in the store
// folder (see store.Store.Take), stops writing at once and waits as a
// standby. A holder that cannot reach the database keeps serving: no
// other member can take the lease without the database either, and
// where the database is reachable from the other member only (a
// partition), the fence the new holder writes into the shared folder
// before it serves makes the old holder's next change fail.
//
// A holder whose process was paused (SIGSTOP, a long stall) for longer
// than the lease's lifetime does not write on waking before its next
// renewal has been tried: Keeper.Holding says so, and the store asks it
// before every change.
//
// Not yet: a change that passed the fence check and is then paused
// between the check and its last rename can still land after a new
// holder took over; the window is a few system calls long, but a pause
// there has no bound. A store on a file system that refuses writes by
// token (not plain POSIX) would close it.
//
// The lease needs MySQL or MariaDB (NOW(6), INTERVAL arithmetic): back
// nodes run on MySQL only.
package lease
