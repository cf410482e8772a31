package directory

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// User is a person with their account and posts, as the API shows them.
type User struct {
	Person
	Account *Account  `json:"account,omitempty"`
	Posts   []PostRef `json:"posts"`
}

// PostRef names a post a person holds.
type PostRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// UserFilter selects users. Empty fields select everything.
type UserFilter struct {
	// Status is a person status ("active", "left") or an account status
	// ("enabled", "disabled").
	Status string
	// OrgUnit is a unit's id or OA id; only its direct members match.
	OrgUnit string
	// Login matches a login without regard to case.
	Login string
	// Kind is a person kind ("staff", "shared", "service").
	Kind string
	// Offset and Limit page the result, in display order.
	Offset, Limit int
}

// ErrBadFilter is answered for a filter value that selects nothing by
// construction, such as an unknown status.
var ErrBadFilter = errors.New("directory: invalid filter")

// ListUsers answers one page of the users that f selects, and how many
// there are in all.
func (s *Store) ListUsers(ctx context.Context, f UserFilter) ([]User, int64, error) {
	q := s.db.WithContext(ctx).Model(&Person{})
	switch f.Status {
	case "":
	case PersonActive, PersonLeft:
		q = q.Where("people.status = ?", f.Status)
	case AccountEnabled, AccountDisabled:
		q = q.Where("EXISTS (SELECT 1 FROM accounts a WHERE a.person_id = people.id AND a.status = ?)", f.Status)
	default:
		return nil, 0, fmt.Errorf("%w: status %q (want active, left, enabled or disabled)", ErrBadFilter, f.Status)
	}
	if f.OrgUnit != "" {
		unit, err := s.findUnit(ctx, f.OrgUnit)
		if err != nil {
			return nil, 0, err
		}
		q = q.Where("people.unit_id = ?", unit.ID)
	}
	switch f.Kind {
	case "":
	case PersonStaff, PersonShared, PersonService:
		q = q.Where("people.kind = ?", f.Kind)
	default:
		return nil, 0, fmt.Errorf("%w: kind %q (want staff, shared or service)", ErrBadFilter, f.Kind)
	}
	if f.Login != "" {
		q = q.Where("people.login_lower = ?", strings.ToLower(f.Login))
	}

	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, fmt.Errorf("directory: count users: %w", err)
	}
	var people []Person
	page := q.Order("people.sort_order, people.login_lower").Offset(f.Offset)
	if f.Limit > 0 {
		page = page.Limit(f.Limit)
	}
	if err := page.Find(&people).Error; err != nil {
		return nil, 0, fmt.Errorf("directory: list users: %w", err)
	}
	users, err := s.withAccounts(ctx, people)
	return users, total, err
}

// GetUser answers the user that id names: a person id, an OA id or a
// login (compared without regard to case), tried in that order.
func (s *Store) GetUser(ctx context.Context, id string) (*User, error) {
	var p Person
	err := s.db.WithContext(ctx).
		Where("id = ? OR oa_id = ? OR login_lower = ?", id, id, strings.ToLower(id)).
		Order(clause.OrderBy{Expression: clause.Expr{
			SQL:                "CASE WHEN id = ? THEN 0 WHEN oa_id = ? THEN 1 ELSE 2 END",
			Vars:               []any{id, id},
			WithoutParentheses: true,
		}}).
		Take(&p).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("directory: get user %s: %w", id, err)
	}
	users, err := s.withAccounts(ctx, []Person{p})
	if err != nil {
		return nil, err
	}
	return &users[0], nil
}

// withAccounts joins accounts and posts to people, in two queries for the
// whole page rather than two per person.
func (s *Store) withAccounts(ctx context.Context, people []Person) ([]User, error) {
	users := make([]User, len(people))
	if len(people) == 0 {
		return users, nil
	}
	ids := make([]string, len(people))
	index := make(map[string]int, len(people))
	for i, p := range people {
		ids[i] = p.ID
		index[p.ID] = i
		users[i] = User{Person: p, Posts: []PostRef{}}
	}

	db := s.db.WithContext(ctx)
	var accts []Account
	if err := db.Where("person_id IN ?", ids).Find(&accts).Error; err != nil {
		return nil, fmt.Errorf("directory: accounts of users: %w", err)
	}
	for i := range accts {
		users[index[*accts[i].PersonID]].Account = &accts[i]
	}

	var posts []struct {
		PersonID string
		ID       string
		Name     string
	}
	err := db.Table("person_posts").
		Select("person_posts.person_id, posts.id, posts.name").
		Joins("JOIN posts ON posts.id = person_posts.post_id").
		Where("person_posts.person_id IN ?", ids).
		Order("posts.sort_order, posts.name").
		Scan(&posts).Error
	if err != nil {
		return nil, fmt.Errorf("directory: posts of users: %w", err)
	}
	for _, p := range posts {
		u := &users[index[p.PersonID]]
		u.Posts = append(u.Posts, PostRef{ID: p.ID, Name: p.Name})
	}
	return users, nil
}

// UnitView is an org unit with its direct children, as the API shows it.
type UnitView struct {
	OrgUnit
	Children []OrgUnit `json:"children"`
	// People counts the unit's direct members.
	People int64 `json:"people"`
}

// GetOrgUnit answers the unit with this id or OA id, with its children.
func (s *Store) GetOrgUnit(ctx context.Context, id string) (*UnitView, error) {
	unit, err := s.findUnit(ctx, id)
	if err != nil {
		return nil, err
	}
	v := &UnitView{OrgUnit: *unit, Children: []OrgUnit{}}
	db := s.db.WithContext(ctx)
	err = db.Where("parent_id = ?", unit.ID).
		Order("sort_order, name").Find(&v.Children).Error
	if err != nil {
		return nil, fmt.Errorf("directory: children of unit %s: %w", unit.ID, err)
	}
	err = db.Model(&Person{}).Where("unit_id = ?", unit.ID).Count(&v.People).Error
	if err != nil {
		return nil, fmt.Errorf("directory: people of unit %s: %w", unit.ID, err)
	}
	return v, nil
}

func (s *Store) findUnit(ctx context.Context, id string) (*OrgUnit, error) {
	var u OrgUnit
	err := s.db.WithContext(ctx).Where("id = ? OR oa_id = ?", id, id).Take(&u).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fmt.Errorf("%w: org unit %q", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("directory: get unit %q: %w", id, err)
	}
	return &u, nil
}

// ListOrgUnits answers a page of the top-level units (those without a
// parent), or, when parent names a unit by id or OA id, of that unit's
// children, in display order, with how many there are in all. It is a
// list, so it may be read from a replica.
func (s *Store) ListOrgUnits(ctx context.Context, parent string, offset, limit int) ([]OrgUnit, int64, error) {
	units := []OrgUnit{}
	var total int64
	err := s.Read(ctx, func(db *gorm.DB) error {
		units, total = []OrgUnit{}, 0
		sel := db.Model(&OrgUnit{}).Where("parent_id IS NULL")
		if parent != "" {
			var p OrgUnit
			err := db.Where("id = ? OR oa_id = ?", parent, parent).Take(&p).Error
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return fmt.Errorf("%w: org unit %q", ErrNotFound, parent)
			}
			if err != nil {
				return fmt.Errorf("directory: get unit %q: %w", parent, err)
			}
			sel = db.Model(&OrgUnit{}).Where("parent_id = ?", p.ID)
		}
		if err := sel.Count(&total).Error; err != nil {
			return fmt.Errorf("directory: count units: %w", err)
		}
		err := sel.Order("sort_order, name, id").Offset(offset).Limit(limit).Find(&units).Error
		if err != nil {
			return fmt.Errorf("directory: list units: %w", err)
		}
		return nil
	})
	return units, total, err
}
