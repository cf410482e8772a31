package mailcore

import (
	"context"
	"errors"
)

// Account is what the mail engine knows of a mailbox owner. The directory
// owns the record; the engine sees only this much of it.
type Account struct {
	// ID is the directory's stable id for the account. The store names the
	// account's folder after it, so a change of address moves no files.
	ID string
	// Address is the primary mail address, lower case.
	Address string
	// Login is the name the user signs in with.
	Login string
	// QuotaBytes bounds what the account's mailboxes may hold together;
	// zero means no limit.
	QuotaBytes int64
}

// Errors an Accounts implementation answers with.
var (
	// ErrNoAccount means no enabled account has that address.
	ErrNoAccount = errors.New("mailcore: no such account")
	// ErrBadCredentials means the name is unknown, the account is
	// disabled, or the password does not match. Callers must not tell
	// these apart to the client.
	ErrBadCredentials = errors.New("mailcore: invalid credentials")
)

// Accounts is how the mail engine reads the directory. Any other error
// than the two above is temporary (the database is unreachable, say) and
// is reported to clients as a temporary failure.
type Accounts interface {
	// LookupAddress resolves a recipient address, compared without
	// regard to case, to an enabled account.
	LookupAddress(ctx context.Context, address string) (Account, error)
	// Authenticate checks a user name (login or address) and password
	// and answers the enabled account they belong to.
	Authenticate(ctx context.Context, username, password string) (Account, error)
}

// Senders is what an Accounts may implement besides, to say which
// addresses an account may send as. Without it, an account may send as
// the addresses LookupAddress resolves to it: its own and its aliases.
type Senders interface {
	// SendAs reports whether the account accountID may put address
	// in MAIL FROM and the From field. An error is temporary.
	SendAs(ctx context.Context, accountID, address string) (bool, error)
}
