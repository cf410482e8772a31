package directory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"gorm.io/gorm"
)

// HomeNode answers the back node recorded for an account, or "" when
// none is: the front then picks one from the account's id.
func (s *Store) HomeNode(ctx context.Context, accountID string) (string, error) {
	var row struct{ HomeNode sql.NullString }
	err := s.db.WithContext(ctx).Table("accounts").
		Select("home_node").Where("id = ?", accountID).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("directory: home node of %s: %w", accountID, err)
	}
	return row.HomeNode.String, nil
}

// SetHomeNode records the back node that holds an account's mailboxes;
// "" clears it. It moves no mail: the caller has done that.
func (s *Store) SetHomeNode(ctx context.Context, accountID, node string) error {
	var v any
	if node != "" {
		v = node
	}
	res := s.db.WithContext(ctx).Table("accounts").
		Where("id = ?", accountID).Update("home_node", v)
	if res.Error != nil {
		return fmt.Errorf("directory: set home node of %s: %w", accountID, res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}
