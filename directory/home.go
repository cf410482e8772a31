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

// ClaimHomeNode records node as the account's home unless one is
// recorded already, and answers the home that holds afterwards: node,
// or the one recorded earlier. Two fronts that claim at once thus
// agree on whichever was written first.
func (s *Store) ClaimHomeNode(ctx context.Context, accountID, node string) (string, error) {
	if node == "" {
		return "", fmt.Errorf("directory: claim home node of %s: no node named", accountID)
	}
	err := s.db.WithContext(ctx).Table("accounts").
		Where("id = ? AND home_node IS NULL", accountID).
		Update("home_node", node).Error
	if err != nil {
		return "", fmt.Errorf("directory: claim home node of %s: %w", accountID, err)
	}
	got, err := s.HomeNode(ctx, accountID)
	if err != nil {
		return "", err
	}
	return got, nil
}

// LeastHomed answers the node among nodes that the fewest accounts
// name as their home, the first in the order given on a tie. Homes
// recorded for nodes outside the list are not counted.
func (s *Store) LeastHomed(ctx context.Context, nodes []string) (string, error) {
	if len(nodes) == 0 {
		return "", errors.New("directory: least homed node: no nodes named")
	}
	var rows []struct {
		HomeNode string
		N        int64
	}
	err := s.db.WithContext(ctx).Table("accounts").
		Select("home_node, COUNT(*) AS n").
		Where("home_node IN ?", nodes).
		Group("home_node").Scan(&rows).Error
	if err != nil {
		return "", fmt.Errorf("directory: count homes: %w", err)
	}
	count := map[string]int64{}
	for _, r := range rows {
		count[r.HomeNode] = r.N
	}
	best := nodes[0]
	for _, n := range nodes[1:] {
		if count[n] < count[best] {
			best = n
		}
	}
	return best, nil
}
