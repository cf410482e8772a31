package directory

import (
	"context"
	"errors"
	"fmt"

	"gorm.io/gorm"
)

// SignInPerson answers a person by id and the person's account (nil for
// none), read as Read reads, for checks of a credential issued earlier,
// such as an access token's subject, that must go on while the primary
// is down.
func (s *Store) SignInPerson(ctx context.Context, personID string) (*Person, *Account, error) {
	var p Person
	var acct *Account
	err := s.Read(ctx, func(db *gorm.DB) error {
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
