// Package oasync turns the OA system's data (Landray EKP org elements)
// into changes of the directory.
//
// # What it accepts
//
// EKP's export service answers an envelope
//
//	{"returnState": 2, "message": "<JSON array as a string>", "count": N, "timeStamp": "..."}
//
// and ImportSnapshot takes that, an envelope whose message is already an
// array, or the bare array, optionally gzip-compressed (recognised by its
// magic bytes). Each element is an org, dept, post, person or group.
//
// # The steps
//
// An import runs in four steps, all inside one database transaction:
//
//	decode    the bytes become elements; malformed JSON stops here
//	validate  every element is checked before anything is written
//	plan      the elements are compared with the directory as loaded once
//	          into memory, giving creates, updates, disables and enables
//	apply     the plan is written in batches, parents before children,
//	          with one change-log row for every record that changed
//
// A dry run stops after plan and rolls the transaction back.
//
// # Failure semantics
//
// A snapshot is applied whole or not at all. Any problem found while
// decoding or validating (an element without an id, an unknown type, a
// parent cycle, text that is not UTF-8, a duplicate id, a person without a
// login, two people whose logins differ only in case, two people who would
// receive the same mail address, a login that makes no mail address, a
// parent that is a post or person, a field of the wrong JSON type, an
// envelope whose count disagrees with its message, returnState other than
// EKP's success code 2, malformed JSON) refuses the snapshot with an
// *InvalidError that lists every problem found and names each offending
// element; nothing is written. Malformed input (bad JSON, a broken gzip
// stream) also matches ErrMalformed with errors.Is. A
// database error during apply rolls everything back and is answered
// wrapped; such an error is worth retrying, an *InvalidError is not until
// the data changes.
//
// What is not wrong enough to refuse is applied and reported as a warning
// naming the element: a person, post or department whose parent is
// neither in the snapshot nor in the directory is placed in the holding
// unit (created on first need, under the org root when there is exactly
// one); a post, person or group member that cannot be resolved is left
// out; an existing account whose address the OA's rule would now make
// different keeps its address.
//
// # Rules
//
//   - Records are found by OA id and keep their egret id; new records get
//     directory.NewID. Ids are never reused.
//   - A person with isAvailable false is "left" and their account is
//     disabled; nothing is deleted. A person who becomes available again
//     is active and their account is enabled, under the same ids. The
//     account of a person who stays active is not re-enabled by an
//     import, so an operator's lock survives it.
//   - A new account's address is the OA email when it is on the mail
//     domain, else the lower-case login at the mail domain. An email on
//     another domain is kept as the person's alt_email. Once made, an
//     address changes only by an explicit operation, never by an import.
//   - Mobile numbers are kept as digits without the +86 country prefix,
//     beside the raw text the OA sent.
//   - The posts a person holds are the union of the person's posts and the
//     posts listing the person; for the people and posts in the snapshot,
//     the directory is made to hold exactly that. Group members likewise.
//   - People, units, posts and groups the directory has but the snapshot
//     lacks are left as they are and counted as absent.
//   - Applying the same snapshot twice changes nothing the second time:
//     values are normalised before they are compared, and unchanged rows
//     are not written.
//
// Imports in one process are serialised; imports from several processes
// against one MySQL database are not, and the later one fails on a unique
// key and rolls back if both create the same records.
package oasync
