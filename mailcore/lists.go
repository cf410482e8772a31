package mailcore

import (
	"context"
	"fmt"
)

// Who may post to a list.
const (
	// PostMembers takes mail whose envelope sender is the address or
	// an alias of a current member.
	PostMembers = "members"
	// PostDomain takes mail whose envelope sender is on the mail
	// domain.
	PostDomain = "domain"
	// PostAnyone takes mail from every sender.
	PostAnyone = "anyone"
)

// Lists is what an Accounts implementation also offers when the
// directory has mailing lists; the SMTP server asks for it with a type
// assertion, and an implementation without it has no lists.
type Lists interface {
	// ExpandList answers the enabled accounts that mail to address
	// reaches, given the envelope sender (empty for the null sender).
	// isList is false, with no error, when address is no list. A
	// sender who may not post gets a *PostRefusal. A list that
	// reaches itself (a unit among its own sub-units, a group among
	// its own members) counts each account once. Any other error is
	// temporary, as for Accounts.
	ExpandList(ctx context.Context, address, sender string) (members []Account, isList bool, err error)
}

// PostRefusal is the answer of ExpandList to a sender the list's posting
// policy does not admit.
type PostRefusal struct {
	// List is the list's address.
	List string
	// Policy is PostMembers or PostDomain.
	Policy string
}

// Error says which policy refused the sender.
func (e *PostRefusal) Error() string {
	switch e.Policy {
	case PostMembers:
		return fmt.Sprintf("%s takes mail from its members only", e.List)
	case PostDomain:
		return fmt.Sprintf("%s takes mail from its own domain only", e.List)
	}
	return fmt.Sprintf("%s does not take mail from this sender (policy %q)",
		e.List, e.Policy)
}
