package directory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
)

// The role addresses every mail domain must answer: postmaster is
// required by RFC 5321 §4.5.1, abuse is expected by RFC 2142 §2 of any
// host that offers mail service.
const (
	postmasterLogin = "postmaster"
	abuseLocal      = "abuse"
)

// EnsurePostmaster makes sure mail to postmaster@<domain> and
// abuse@<domain> is received. Where no live account or alias has the
// postmaster address, a service mailbox with the login "postmaster"
// is made for it, without a password (an operator sets one with
// `egret user passwd postmaster`); abuse@ becomes its alias when nobody
// holds it. A role address that belongs to someone already (the OA may
// give postmaster to a real mailbox) is left alone. It answers the
// account that receives postmaster mail.
func (l *Lifecycle) EnsurePostmaster(ctx context.Context) (MailAccount, error) {
	addr := postmasterLogin + "@" + l.Domain
	acct, err := l.Store.LookupAddress(ctx, addr)
	if err == nil {
		return acct, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return MailAccount{}, err
	}

	u, err := l.CreateUser(ctx, NewUser{
		Kind:        PersonService,
		Login:       postmasterLogin,
		DisplayName: "Postmaster",
		Address:     addr,
	})
	if err != nil {
		return MailAccount{}, fmt.Errorf("directory: postmaster mailbox: %w", err)
	}
	l.log().Info("postmaster mailbox created", slog.String("account", u.Account.ID), slog.String("address", addr))

	abuse := abuseLocal + "@" + l.Domain
	if _, err := l.Store.LookupAddress(ctx, abuse); errors.Is(err, ErrNotFound) {
		if _, err := l.AddAlias(ctx, u.ID, abuse); err != nil {
			// A held address (a deleted account's, in retention)
			// is a conflict; postmaster still works without it.
			l.log().Warn("abuse address not added to postmaster", slog.String("account", u.Account.ID), slog.Any("err", err))
		}
	}
	return MailAccount{ID: u.Account.ID, Address: addr, Login: postmasterLogin}, nil
}
