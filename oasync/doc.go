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
// Three ways in share the steps below: ImportSnapshot takes the OA's
// whole organisation; ImportChanges takes a page of the elements altered
// since some time, in ascending alterTime, and touches only what the page
// names; Puller fetches such changes from EKP's export service
// (getUpdatedElements) and applies each run as one page.
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
// # The safety valve
//
// An import that would disable more accounts than Importer.DisableThreshold
// (DefaultDisableThreshold, 500) is not applied. Its plan is held in the
// table oa_plans with the input, gzip-compressed, and the report listing
// every account it would disable; the report answers Held and the plan's
// id. Approve plans the input again against the directory as it is then,
// refuses input that has become invalid (the plan stays held), and
// applies it past the threshold when it disables no account the held
// plan did not list; when it would disable another, nothing is applied
// and the plan is superseded, since the approver did not see that. Plan
// and apply are one transaction, so a plan goes from held to applied.
// The same input held twice is one plan; a later snapshot, or a later
// pull, supersedes the held plans of its kind.
//
// # Pages of changes and their order
//
// A page names each record it changes in full, as EKP sends it. An
// element whose alterTime is older than the one egret holds for its id is
// stale: it is dropped before planning, counted in Report.Stale and named
// in a warning, so that a page that arrives late, or again, rolls nothing
// back. An element as old as the record is applied, and changes nothing
// when it is the same. An alterTime that cannot be read, or that lies more
// than a day past this server's clock (a wrong clock, a mistyped year), is
// named in a warning and not kept: the record keeps the time it held, so
// that the rule still guards it, and the pull connector's cursor does not
// move past rows still to come. Parents may be units the directory holds; a move
// that would close a cycle with them is refused. The rule is for pages
// only: a snapshot is the OA's whole state and is applied as it stands.
//
// # The change log
//
// Every row an import writes carries its actor: the caller from the
// context (an API key, an OS user), then "oa:<kind>@<first 16 hex digits
// of the input's SHA-256>", and "/approved:<plan id>" for an approval;
// Report.Source carries the whole digest and the envelope's timeStamp.
// A row that updates a record carries the record as it was, in Before.
//
// # Failure semantics
//
// A snapshot is applied whole or not at all. Any problem found while
// decoding or validating (an element without an id, an unknown type, a
// parent cycle, text that is not UTF-8, a duplicate id, a person without a
// login, two people whose logins differ only in case, two people who would
// receive the same mail address, a new address that is another account's
// address or alias, a login that makes no mail address, a
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
//     domain, else the login at the mail domain, in Unicode NFKC and lower
//     case either way. It may not be an address another account holds,
//     its own or as an alias. An email on
//     another domain is kept as the person's alt_email. Once made, an
//     address changes only by an explicit operation, never by an import.
//   - Mobile numbers are kept as digits without the +86 country prefix,
//     beside the raw text the OA sent.
//   - The posts a person holds are the union of the person's posts and the
//     posts listing the person; for the people and posts in the snapshot,
//     the directory is made to hold exactly that. Group members likewise.
//   - People the directory holds from the OA whom a full snapshot lacks
//     are "left" and their accounts disabled, counted as absent and
//     disabled, with reason "absent" in Report.DisabledAccounts. Units,
//     posts and groups a snapshot lacks are left as they are and counted
//     as absent. A page of changes makes nobody absent.
//   - Logins are compared, and kept in login_lower, in Unicode NFKC and
//     lower case, so that a full-width login cannot stand beside its
//     ASCII twin.
//   - Applying the same snapshot twice changes nothing the second time:
//     values are normalised before they are compared, and unchanged rows
//     are not written.
//
// # The pull connector
//
// Puller's comment gives its paging. Its cursor is kept in oa_cursors
// and moves only in the transaction that applies a complete run; a run
// that fails on any page, or is held, leaves it, and the next run fetches
// the same rows again, which the stale and equal-alterTime rules make
// harmless.
//
// Imports in one process are serialised; imports from several processes
// against one MySQL database are not, and the later one fails on a unique
// key and rolls back if both create the same records.
package oasync
