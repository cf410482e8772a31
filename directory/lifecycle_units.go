package directory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"gorm.io/gorm"
)

// NewUnit is an org unit to create.
type NewUnit struct {
	Name string
	// Kind is "dept" (the default) or "org".
	Kind string
	// ParentID is the parent's id or OA id; a dept must have one.
	ParentID  string
	OAID      string
	SortOrder int
}

// UnitChange carries the attributes of a unit to change; nil leaves one
// as it is.
type UnitChange struct {
	Name      *string
	SortOrder *int
}

// maxListed bounds the records a refusal lists.
const maxListed = 100

// CreateUnit creates an org unit.
func (l *Lifecycle) CreateUnit(ctx context.Context, in NewUnit) (*OrgUnit, error) {
	if in.Kind == "" {
		in.Kind = UnitDept
	}
	if in.Kind != UnitDept && in.Kind != UnitOrg {
		return nil, fieldErr("kind", "%q: want dept or org", in.Kind)
	}
	if err := checkText("name", in.Name, maxNameLen, true); err != nil {
		return nil, err
	}
	if err := checkOAID("oa_id", in.OAID); err != nil {
		return nil, err
	}
	if err := checkText("parent_id", in.ParentID, maxOAIDLen, in.Kind == UnitDept); err != nil {
		return nil, err
	}
	now := l.now()
	u := OrgUnit{
		ID: NewID(), Kind: in.Kind, Name: in.Name,
		SortOrder: in.SortOrder, Available: true,
		CreatedAt: now, UpdatedAt: now,
	}
	if in.OAID != "" {
		u.OAID = &in.OAID
	}
	err := l.tx(ctx, func(tx *gorm.DB) error {
		if in.ParentID != "" {
			parent, err := unitIn(tx, in.ParentID)
			if errors.Is(err, ErrNotFound) {
				return fieldErr("parent_id", "no org unit %q", in.ParentID)
			}
			if err != nil {
				return err
			}
			u.ParentID = &parent.ID
		}
		if in.OAID != "" {
			var other OrgUnit
			err := tx.Where("oa_id = ?", in.OAID).Take(&other).Error
			if err == nil {
				return &ConflictError{Field: "oa_id", Message: fmt.Sprintf("OA id %q belongs to another unit", in.OAID),
					Holders: []Holder{{Kind: EntityUnit, ID: other.ID, Name: other.Name}}}
			}
			if !errors.Is(err, gorm.ErrRecordNotFound) {
				return err
			}
		}
		if err := tx.Create(&u).Error; err != nil {
			return err
		}
		return l.logChange(tx, EntityUnit, u.ID, OpCreate, nil, u)
	})
	if err != nil {
		return nil, l.wrap(err, "create unit", "")
	}
	l.log().Info("org unit created", slog.String("unit", u.ID))
	return &u, nil
}

// UpdateUnit renames a unit or changes its sort order.
func (l *Lifecycle) UpdateUnit(ctx context.Context, id string, ch UnitChange) (*OrgUnit, error) {
	if ch.Name != nil {
		if err := checkText("name", *ch.Name, maxNameLen, true); err != nil {
			return nil, err
		}
	}
	var after OrgUnit
	err := l.tx(ctx, func(tx *gorm.DB) error {
		before, err := l.lockUnit(tx, id)
		if err != nil {
			return err
		}
		after = *before
		set := map[string]any{}
		if ch.Name != nil && *ch.Name != before.Name {
			after.Name, set["name"] = *ch.Name, *ch.Name
		}
		if ch.SortOrder != nil && *ch.SortOrder != before.SortOrder {
			after.SortOrder, set["sort_order"] = *ch.SortOrder, *ch.SortOrder
		}
		if len(set) == 0 {
			return nil
		}
		after.UpdatedAt = l.now()
		set["updated_at"] = after.UpdatedAt
		if err := tx.Model(&OrgUnit{}).Where("id = ?", before.ID).Updates(set).Error; err != nil {
			return err
		}
		return l.logChange(tx, EntityUnit, before.ID, OpUpdate, before, after)
	})
	if err != nil {
		return nil, l.wrap(err, "update unit", id)
	}
	return &after, nil
}

// MoveUnit gives a unit a new parent. A move under the unit itself or
// one of its descendants is refused: it would cut the subtree off the
// tree in a cycle.
func (l *Lifecycle) MoveUnit(ctx context.Context, id, parentID string) (*OrgUnit, error) {
	if err := checkText("parent_id", parentID, maxOAIDLen, true); err != nil {
		return nil, err
	}
	var after OrgUnit
	err := l.tx(ctx, func(tx *gorm.DB) error {
		before, err := l.lockUnit(tx, id)
		if err != nil {
			return err
		}
		parent, err := unitIn(tx, parentID)
		if errors.Is(err, ErrNotFound) {
			return fieldErr("parent_id", "no org unit %q", parentID)
		}
		if err != nil {
			return err
		}

		// Walk up from the new parent; meeting the unit means a cycle.
		// The walk is bounded in case the stored tree already has one.
		path := []Holder{}
		for cur, steps := parent, 0; cur != nil && steps < 10000; steps++ {
			path = append(path, Holder{Kind: EntityUnit, ID: cur.ID, Name: cur.Name})
			if cur.ID == before.ID {
				return &ConflictError{Field: "parent_id",
					Message: fmt.Sprintf("unit %s would be its own ancestor", before.ID), Holders: path}
			}
			if cur.ParentID == nil {
				break
			}
			var next OrgUnit
			if err := tx.Where("id = ?", *cur.ParentID).Take(&next).Error; err != nil {
				return fmt.Errorf("parent of unit %s: %w", cur.ID, err)
			}
			cur = &next
		}

		after = *before
		if before.ParentID != nil && *before.ParentID == parent.ID {
			return nil
		}
		after.ParentID = &parent.ID
		after.UpdatedAt = l.now()
		err = tx.Model(&OrgUnit{}).Where("id = ?", before.ID).
			Updates(map[string]any{"parent_id": parent.ID, "updated_at": after.UpdatedAt}).Error
		if err != nil {
			return err
		}
		return l.logChange(tx, EntityUnit, before.ID, OpUpdate, before, after)
	})
	if err != nil {
		return nil, l.wrap(err, "move unit", id)
	}
	return &after, nil
}

// DeleteUnit removes an empty unit. A unit that still has people, child
// units or posts, or that a group lists as a member, is refused with a
// *ConflictError listing them.
func (l *Lifecycle) DeleteUnit(ctx context.Context, id string) error {
	err := l.tx(ctx, func(tx *gorm.DB) error {
		before, err := l.lockUnit(tx, id)
		if err != nil {
			return err
		}
		var holders []Holder
		var people []Person
		if err := tx.Where("unit_id = ?", before.ID).Order("sort_order, login_lower").
			Limit(maxListed).Find(&people).Error; err != nil {
			return err
		}
		for _, p := range people {
			holders = append(holders, Holder{Kind: EntityPerson, ID: p.ID, Name: p.DisplayName})
		}
		var children []OrgUnit
		if err := tx.Where("parent_id = ?", before.ID).Order("sort_order, name").
			Limit(maxListed).Find(&children).Error; err != nil {
			return err
		}
		for _, c := range children {
			holders = append(holders, Holder{Kind: EntityUnit, ID: c.ID, Name: c.Name})
		}
		var posts []Post
		if err := tx.Where("unit_id = ?", before.ID).Order("sort_order, name").
			Limit(maxListed).Find(&posts).Error; err != nil {
			return err
		}
		for _, p := range posts {
			holders = append(holders, Holder{Kind: EntityPost, ID: p.ID, Name: p.Name})
		}
		// A group that lists the unit would be left naming a unit that
		// is gone, and no change-log row would tell its mirrors.
		var groups []Group
		if err := tx.Where("id IN (?)", tx.Model(&GroupMember{}).Select("group_id").
			Where("member_kind = ? AND member_id = ?", MemberUnit, before.ID)).
			Order("name").Limit(maxListed).Find(&groups).Error; err != nil {
			return err
		}
		for _, g := range groups {
			holders = append(holders, Holder{Kind: EntityGroup, ID: g.ID, Name: g.Name})
		}
		if len(holders) > 0 {
			return &ConflictError{Field: "id",
				Message: fmt.Sprintf("unit %s still holds %d people, %d units and %d posts, "+
					"and is a member of %d groups (at most %d of each listed)",
					before.ID, len(people), len(children), len(posts), len(groups), maxListed),
				Holders: holders}
		}
		if err := tx.Where("id = ?", before.ID).Delete(&OrgUnit{}).Error; err != nil {
			return err
		}
		return l.logChange(tx, EntityUnit, before.ID, OpDelete, before, nil)
	})
	if err != nil {
		return l.wrap(err, "delete unit", id)
	}
	l.log().Info("org unit deleted", slog.String("unit", id))
	return nil
}

// lockUnit reads the unit with this id or OA id for update.
func (l *Lifecycle) lockUnit(tx *gorm.DB, id string) (*OrgUnit, error) {
	var u OrgUnit
	err := l.locked(tx).Where("id = ? OR oa_id = ?", id, id).Take(&u).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fmt.Errorf("%w: org unit %q", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("unit %q: %w", id, err)
	}
	return &u, nil
}

// unitIn reads the unit with this id or OA id within tx.
func unitIn(tx *gorm.DB, id string) (*OrgUnit, error) {
	var u OrgUnit
	err := tx.Where("id = ? OR oa_id = ?", id, id).Take(&u).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fmt.Errorf("%w: org unit %q", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("unit %q: %w", id, err)
	}
	return &u, nil
}

// wrap passes refusals through as they are and adds what failed to
// anything else. A unique key that a concurrent writer won is answered
// as the conflict it is.
func (l *Lifecycle) wrap(err error, what, id string) error {
	var fe *FieldError
	var ce *ConflictError
	switch {
	case errors.As(err, &fe), errors.As(err, &ce), errors.Is(err, ErrNotFound):
		return err
	case isDuplicate(err):
		return &ConflictError{Field: "id", Message: "another change took the same name or address first; look again and retry"}
	}
	if id != "" {
		return fmt.Errorf("directory: %s %s: %w", what, id, err)
	}
	return fmt.Errorf("directory: %s: %w", what, err)
}
