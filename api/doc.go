// Package api serves egret's HTTP interface: the REST API under /api/v1
// for the OA system and other integrators, and the health endpoint.
//
// Every /api/v1 request carries "Authorization: Bearer KEY". Keys are
// checked against their SHA-256 digests in the directory, and each route
// needs one scope:
//
//	directory:read   GET  /api/v1/users, /api/v1/users/{id},
//	                      /api/v1/orgunits, /api/v1/orgunits/{id},
//	                      /api/v1/users/{id}/aliases
//	directory:write  POST /api/v1/users/{id}/password, and the lifecycle:
//	                      creating, changing, moving and deleting org units
//	                      and users' accounts, aliases (lifecycle.go)
//	audit:read       GET  /api/v1/audit
//	oa:sync          POST /api/v1/oa/snapshot, /api/v1/oa/changes,
//	                      GET /api/v1/oa/plans, /api/v1/oa/plans/{id},
//	                      POST /api/v1/oa/plans/{id}/approve
//
// Every /api/v1/users/{id} route takes for {id} what GET takes: a
// person id, an OA id or a login, tried in that order.
//
// A key with scope "*" may do everything. Errors are JSON objects of the
// form {"error": {"code": "...", "message": "..."}} with a status code
// that says whose fault it was: 4xx for the caller's, 503 when a
// dependency is down and the call may be retried, 500 for a bug.
package api
