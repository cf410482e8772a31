// Package ldapmirror keeps an LDAP server's copy of the directory: it
// follows the change log with a cursor of its own and writes what each
// change touched, and a full pass (at first start, after a long
// backlog, on a schedule and by command) compares the whole directory
// with LDAP and repairs drift.
//
// Layout, under the configured base DN:
//
//	BASE                                  made if missing (dc=, o= or ou=)
//	├─ ou=<org>                           the OA tree, each unit an
//	│  └─ ou=<dept>                       organizationalUnit, nested as in
//	│     └─ uid=<login>                  the OA; enabled people as
//	│                                     inetOrgPerson in their unit
//	├─ ou=former-staff                    people who left, or whose account
//	│  └─ uid=<login>                     is disabled or deleted
//	└─ ou=groups
//	   └─ cn=<group>                      OA groups as groupOfNames
//
// Every entry egret writes carries egret's id of its record in
// uniqueIdentifier (RFC 4524 §2.24, from the cosine schema), allowed by
// the auxiliary class extensibleObject (RFC 4512 §4.3); that is how the
// mirror finds an entry again after a rename or a move, so the server
// should index uniqueIdentifier for equality. Everything below the base
// is egret's: a full pass deletes entries it did not make.
//
// Names. Values are UTF-8 and escaped in DNs as RFC 4514 §2.4 requires
// and in filters as RFC 4515 §3 does. Siblings whose names the server
// would take for one (case and spaces aside) get distinct RDNs: the
// older record (by id) keeps the plain name, a newer one gets its name
// followed by " [" and the last eight characters of its id "]"; its ou
// or cn also holds the plain name, so (ou=NAME) finds both. An RDN,
// once in LDAP, stays while its record's own name does: renaming or
// adding a sibling never moves another unit.
//
// A person's entry: uid (the login), cn and displayName (the display
// name), sn and givenName (split from it: a Chinese name's surname is
// its first character, or two for a compound surname such as 欧阳; a
// Latin one's is its last word; a pinyin login is never taken for a
// name), mail, mobile, telephoneNumber (left out when not a printable
// string, RFC 4517 §3.3.31), employeeNumber (the OA's employee number),
// title, ou (the unit's name), uniqueIdentifier, and, while enabled with
// a mail password set, userPassword as "{ARGON2}" and the argon2id PHC
// string egret stores, which OpenLDAP's argon2 module verifies on bind.
// A person in former-staff has no userPassword, so cannot bind, and is
// a member of no group; a rehire moves back into their unit.
//
// A group's members are the DNs of its enabled people and of its unit
// members' units; post members are not listed. groupOfNames requires a
// member (RFC 4519 §3.5), so a group without one lists the base DN.
// Org units are mirrored whether or not the OA still marks them
// available; units and groups are only removed when egret removes them.
//
// Failure semantics. Every write is idempotent: an add that finds the
// entry modifies it, a delete of an entry that is gone succeeds, a move
// to where the entry is does nothing. The cursor (table mirror_cursors,
// row "ldap") moves only after LDAP acknowledged a whole batch, so a
// batch cut short by an outage, a crash or an error is applied again in
// full, which shows nothing twice. Run retries a failed step with
// exponential backoff and, when the server answers but the replay keeps
// failing, replaces it with a full pass. Lag (rows and seconds behind
// the log's head) is in Metrics and in Status.
package ldapmirror
