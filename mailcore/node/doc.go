// Package node runs the services of one egret process and tells the
// cluster how they are.
//
// Supervision. Every long-running part of a node (the SMTP, submission,
// IMAP, LMTP and HTTP listeners, the queue runner, the mirrors and the
// schedulers) is a service in one Tree, a suture supervisor. A service
// that panics, or whose run returns while the node is not stopping, is
// restarted: at once the first times, then, when failures come faster
// than the tree's threshold allows, after a pause that the failures
// decay from. Each restart is logged at error level with the service,
// the node and the cause, counted in egret_service_restarts_total and
// shown by the heartbeat. A failing service never stops its siblings:
// the others keep serving while it is restarted.
//
// What is not caught. A panic in a goroutine that a service starts for
// itself, rather than in its run, is not seen by the supervisor and ends
// the process; systemd then restarts the whole node (docs/deploy). The
// SMTP, IMAP and HTTP libraries recover panics per connection, so one
// bad session costs that session only.
//
// Listeners. A listening service binds its address before the node
// starts, so a port in use stops the start cleanly; a restart binds the
// same address again (see Listening).
//
// Shutdown. Stop removes the services in the reverse of the order they
// were added, each waiting for its own drain, so a node that adds the
// store side first and the SMTP side last finishes every transaction it
// accepted before the parts under it go away.
//
// Heartbeat. GET /heartbeat answers the node's name, role, uptime and
// each service's state and restart count as JSON: 200 while every
// service runs, 503 while one is being restarted. Peers read it to
// decide whether to talk to the node.
package node
