package directory

import (
	"context"
	"errors"
	"fmt"

	"gorm.io/gorm"
)

// SignInPerson answers a person by id and the person's account (nil for
// none), for checks of a credential issued earlier, such as an access
// token's subject. It decides access, so it reads as ReadPrimaryFirst
// does: a person who left or an account disabled a moment ago is seen
// at once, and the check still goes on, from a replica, while the
// primary is down.
func (s *Store) SignInPerson(ctx context.Context, personID string) (*Person, *Account, error) {
	var p Person
	var acct *Account
	err := s.ReadPrimaryFirst(ctx, func(db *gorm.DB) error {
		acct = nil
		if err := db.Where("id = ?", personID).Take(&p).Error; err != nil {
			return err
		}
		var a Account
		err := db.Where("person_id = ?", p.ID).Take(&a).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil
		}
		if err == nil {
			acct = &a
		}
		return err
	})
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil, ErrNotFound
	}
	if err != nil {
		return nil, nil, fmt.Errorf("directory: person %s: %w", personID, err)
	}
	return &p, acct, nil
}
