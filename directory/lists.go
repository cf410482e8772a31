package directory

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
)

// EntityList names mailing lists in the change log; the entity id is
// the owning unit's or group's id, and the record says which it is.
const EntityList = "list"

// Owners of a list.
const (
	ListOfUnit  = "unit"
	ListOfGroup = "group"
)

// Posting policies: who may send to a list.
const (
	// ListPostMembers admits an envelope sender that is the address or
	// an alias of a member's account.
	ListPostMembers = "members"
	// ListPostDomain admits a sender on the list address's domain.
	ListPostDomain = "domain"
	// ListPostAnyone admits every sender.
	ListPostAnyone = "anyone"
)

// MailList is the list address of an org unit or an OA group. Its members
// are not stored: they are whoever the unit (with its sub-units, when
// IncludeSubunits) or the group holds at the time mail arrives, each
// with an enabled account.
type MailList struct {
	Address   string `gorm:"primaryKey" json:"address"`
	OwnerKind string `json:"owner_kind"`
	OwnerID   string `json:"owner_id"`
	// IncludeSubunits extends a unit's list to the units below it; for
	// a group, to the units below each unit that is a member.
	IncludeSubunits bool   `json:"include_subunits"`
	Posting         string `json:"posting"`

	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// TableName tells gorm the table's name.
func (MailList) TableName() string { return "mail_lists" }

// ListInput is what SetList takes.
type ListInput struct {
	Address         string
	IncludeSubunits bool
	// Posting is one of the ListPost values; empty means members.
	Posting string
}

// listHolding answers the list that holds addr, or nil.
func (l *Lifecycle) listHolding(tx *gorm.DB, addr string) (*MailList, error) {
	var ml MailList
	err := l.locked(tx).Where("address = ?", addr).Take(&ml).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &ml, nil
}

// listOwner checks that the owner exists and answers its id (a unit may
// be named by its OA id too).
func listOwner(tx *gorm.DB, kind, id string) (string, error) {
	switch kind {
	case ListOfUnit:
		u, err := unitIn(tx, id)
		if err != nil {
			return "", err
		}
		return u.ID, nil
	case ListOfGroup:
		var g Group
		err := tx.Where("id = ? OR oa_id = ?", id, id).Take(&g).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return "", fmt.Errorf("%w: group %q", ErrNotFound, id)
		}
		if err != nil {
			return "", fmt.Errorf("group %q: %w", id, err)
		}
		return g.ID, nil
	}
	return "", fieldErr("owner", "unknown list owner kind %q", kind)
}

// SetList gives an org unit (kind ListOfUnit) or an OA group (ListOfGroup)
// its list address, or changes it. The address must be on the mail
// domain and held by no account, alias or other list.
func (l *Lifecycle) SetList(ctx context.Context, kind, ownerID string, in ListInput) (*MailList, error) {
	addr, err := l.checkAddress("address", in.Address)
	if err != nil {
		return nil, err
	}
	posting := in.Posting
	switch posting {
	case "":
		posting = ListPostMembers
	case ListPostMembers, ListPostDomain, ListPostAnyone:
	default:
		return nil, fieldErr("posting", "%q: want members, domain or anyone", in.Posting)
	}

	var out MailList
	err = l.tx(ctx, func(tx *gorm.DB) error {
		id, err := listOwner(tx, kind, ownerID)
		if err != nil {
			return err
		}
		var old *MailList
		var cur MailList
		err = l.locked(tx).Where("owner_kind = ? AND owner_id = ?", kind, id).Take(&cur).Error
		switch {
		case err == nil:
			old = &cur
		case !errors.Is(err, gorm.ErrRecordNotFound):
			return err
		}

		if old == nil || old.Address != addr {
			if err := l.addressFree(tx, "address", addr, ""); err != nil {
				return err
			}
		}
		now := l.now()
		out = MailList{Address: addr, OwnerKind: kind, OwnerID: id,
			IncludeSubunits: in.IncludeSubunits, Posting: posting,
			CreatedAt: now, UpdatedAt: now}
		op := OpCreate
		if old != nil {
			op = OpUpdate
			out.CreatedAt = old.CreatedAt
			if err := tx.Where("address = ?", old.Address).Delete(&MailList{}).Error; err != nil {
				return err
			}
		}
		if err := tx.Create(&out).Error; err != nil {
			return err
		}
		var before any
		if old != nil {
			before = old
		}
		return l.logChange(tx, EntityList, id, op, before, out)
	})
	if err != nil {
		return nil, l.wrap(err, "list of "+kind, ownerID)
	}
	l.log().Info("list address set", "owner", kind+":"+out.OwnerID,
		"address", out.Address, "posting", out.Posting)
	return &out, nil
}

// RemoveList takes the list address from an org unit or OA group; the
// address is free at once. ErrNotFound when it has none.
func (l *Lifecycle) RemoveList(ctx context.Context, kind, ownerID string) error {
	err := l.tx(ctx, func(tx *gorm.DB) error {
		id, err := listOwner(tx, kind, ownerID)
		if err != nil {
			return err
		}
		var cur MailList
		err = l.locked(tx).Where("owner_kind = ? AND owner_id = ?", kind, id).Take(&cur).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return fmt.Errorf("%w: %s %q has no list", ErrNotFound, kind, ownerID)
		}
		if err != nil {
			return err
		}
		if err := tx.Where("address = ?", cur.Address).Delete(&MailList{}).Error; err != nil {
			return err
		}
		return l.logChange(tx, EntityList, id, OpDelete, cur, nil)
	})
	if err != nil {
		return l.wrap(err, "list of "+kind, ownerID)
	}
	l.log().Info("list address removed", "owner", kind+":"+ownerID)
	return nil
}

// GetList answers the list of an org unit or OA group; ErrNotFound when
// it has none.
func (s *Store) GetList(ctx context.Context, kind, ownerID string) (*MailList, error) {
	db := s.db.WithContext(ctx)
	id, err := listOwner(db, kind, ownerID)
	if err != nil {
		return nil, err
	}
	var ml MailList
	err = db.Where("owner_kind = ? AND owner_id = ?", kind, id).Take(&ml).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fmt.Errorf("%w: %s %q has no list", ErrNotFound, kind, ownerID)
	}
	if err != nil {
		return nil, fmt.Errorf("directory: list of %s %s: %w", kind, ownerID, err)
	}
	return &ml, nil
}

// ListExpansion is a list and where mail to it goes now.
type ListExpansion struct {
	List MailList
	// Members are the enabled accounts of the list's people, each once.
	Members []MailAccount
	// MayPost tells whether the sender given to ExpandList may post.
	MayPost bool
}

// ExpandList resolves a list address to the accounts it reaches now and
// says whether sender may post to it. ErrNotFound when address is no
// list. A list whose owner is gone reaches nobody.
// It reads from a replica when it may, so lists deliver while the
// primary is down.
func (s *Store) ExpandList(ctx context.Context, address, sender string) (*ListExpansion, error) {
	var exp *ListExpansion
	err := s.Read(ctx, func(db *gorm.DB) error {
		var err error
		exp, err = s.expandList(db, address, sender)
		return err
	})
	return exp, err
}

// expandList is ExpandList on db.
func (s *Store) expandList(db *gorm.DB, address, sender string) (*ListExpansion, error) {
	var ml MailList
	err := db.Where("address = ?", NormAddress(address)).Take(&ml).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("directory: list %s: %w", address, err)
	}
	exp := &ListExpansion{List: ml}
	exp.Members, err = s.listMembers(db, ml)
	if err != nil {
		return nil, fmt.Errorf("directory: list %s: %w", ml.Address, err)
	}
	exp.MayPost, err = s.mayPost(db, ml, exp.Members, sender)
	if err != nil {
		return nil, fmt.Errorf("directory: list %s: %w", ml.Address, err)
	}
	return exp, nil
}

// listMembers reads the enabled accounts a list reaches.
func (s *Store) listMembers(db *gorm.DB, ml MailList) ([]MailAccount, error) {
	var units, people []string
	switch ml.OwnerKind {
	case ListOfUnit:
		units = []string{ml.OwnerID}
	case ListOfGroup:
		var g Group
		err := db.Where("id = ?", ml.OwnerID).Take(&g).Error
		if errors.Is(err, gorm.ErrRecordNotFound) || (err == nil && !g.Available) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		var ms []GroupMember
		if err := db.Where("group_id = ?", g.ID).Find(&ms).Error; err != nil {
			return nil, err
		}
		var posts []string
		for _, m := range ms {
			switch m.MemberKind {
			case MemberPerson:
				people = append(people, m.MemberID)
			case MemberUnit:
				units = append(units, m.MemberID)
			case MemberPost:
				posts = append(posts, m.MemberID)
			}
		}
		if len(posts) > 0 {
			var holders []string
			err := db.Model(&PersonPost{}).Where("post_id IN ?", posts).
				Pluck("person_id", &holders).Error
			if err != nil {
				return nil, err
			}
			people = append(people, holders...)
		}
	}
	if ml.IncludeSubunits && len(units) > 0 {
		var err error
		if units, err = subunits(db, units); err != nil {
			return nil, err
		}
	}
	if len(units) == 0 && len(people) == 0 {
		return nil, nil
	}

	q := db.Table("accounts").
		Select("accounts.id, accounts.address, people.login, accounts.quota_bytes").
		Joins("JOIN people ON people.id = accounts.person_id").
		Where("accounts.status = ? AND people.status = ?", AccountEnabled, PersonActive)
	switch {
	case len(units) > 0 && len(people) > 0:
		q = q.Where("(people.unit_id IN ? OR people.id IN ?)", units, people)
	case len(units) > 0:
		q = q.Where("people.unit_id IN ?", units)
	default:
		q = q.Where("people.id IN ?", people)
	}
	var rows []MailAccount
	if err := q.Order("accounts.address").Find(&rows).Error; err != nil {
		return nil, err
	}
	return rows, nil
}

// subunits answers the units and every unit below them, each once. The
// tree has no cycles (MoveUnit refuses them), but the walk keeps a set
// of units seen so that a damaged tree cannot make it loop.
func subunits(db *gorm.DB, roots []string) ([]string, error) {
	seen := make(map[string]bool)
	var out []string
	next := roots
	for len(next) > 0 {
		var level []string
		for _, id := range next {
			if !seen[id] {
				seen[id] = true
				out = append(out, id)
				level = append(level, id)
			}
		}
		if len(level) == 0 {
			break
		}
		next = nil
		err := db.Model(&OrgUnit{}).Where("parent_id IN ?", level).
			Pluck("id", &next).Error
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// mayPost applies the list's posting policy to the envelope sender.
func (s *Store) mayPost(db *gorm.DB, ml MailList, members []MailAccount, sender string) (bool, error) {
	sender = NormAddress(sender)
	switch ml.Posting {
	case ListPostAnyone:
		return true, nil
	case ListPostDomain:
		_, want, _ := strings.Cut(ml.Address, "@")
		_, got, ok := strings.Cut(sender, "@")
		return ok && got == want, nil
	}
	if sender == "" {
		return false, nil
	}
	for _, m := range members {
		if m.Address == sender {
			return true, nil
		}
	}
	var owner []string
	err := db.Model(&Alias{}).Where("address = ?", sender).
		Pluck("account_id", &owner).Error
	if err != nil || len(owner) == 0 {
		return false, err
	}
	for _, m := range members {
		if m.ID == owner[0] {
			return true, nil
		}
	}
	return false, nil
}
