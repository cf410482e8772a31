// Package directory is egret's model of the organisation and its mail
// accounts, and the store that keeps it.
//
// The model:
//
//	OrgUnit   the org tree: the company ("org"), its departments ("dept"),
//	          and the holding unit for people whose OA parent is unknown
//	Post      a position in a department (EKP "post"); people hold posts
//	Person    an employee, or a shared or service identity
//	Account   the mail account of a person: address, password, status
//	Alias     a further address that delivers to an account
//	Group     an OA group; members are people, units or posts
//	Change    one row of the change log that mirrors consume in order
//	APIKey    a credential for the HTTP API, kept as a SHA-256 digest
//
// Every record has an id that egret makes (a version 7 UUID) and never
// reuses. Records that come from the OA also carry the OA's id, by which
// sync finds them again; the OA id is not used as a key anywhere else.
//
// The store runs on SQLite (the embedded default) or MySQL/MariaDB, with
// the schema from package migrations. Writers that change the model append
// to the change log in the same transaction, so a mirror that follows the
// log never misses a change and never sees one that was rolled back.
//
// On MySQL/MariaDB the store may have replicas (WithReplicas). The
// reads of the mail path that may trail the primary (LookupAddress,
// ExpandList) go through Read, which prefers a healthy replica, so mail
// flows while the primary is down. The reads that decide access
// (Authenticate, SignInPerson, VerifyAPIKey, HomeNode, and through
// ReadPrimaryFirst the login guard's lockouts and the OIDC signing
// keys) read the primary while it is up, so that a disabled account, a
// changed password, a revoked key, a rotated signing key or a moved
// home is in force at once; only while the primary is down does a
// replica answer them, with its lag. All else uses the primary, and
// while it is down fails at once with ErrUnavailable, having changed
// nothing. A statement that runs out of its context's time, or is
// cancelled, marks no database down. Health answers what the checker
// last saw of each database.
//
// Lifecycle makes the changes the account-lifecycle API asks for, one
// transaction each (run again when MySQL picks it as a deadlock's
// victim), logging who made each change and the record before and
// after it; Audit reads that trail back. A deleted account is kept,
// with its mail and its addresses, for a retention period in which it
// can be restored; PurgeExpired then removes it.
package directory
