package directory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"gorm.io/gorm"
)

// HomeNode answers the back node recorded for an account, or "" when
// none is: the front then claims the least homed back for it.
// It reads the primary while it is up, so that mail and sign-ins go
// to the new home the moment a move is recorded, and a replica only
// while the primary is down, so mail is still routed then
// (ReadPrimaryFirst).
func (s *Store) HomeNode(ctx context.Context, accountID string) (string, error) {
	return homeNode(ctx, accountID, s.ReadPrimaryFirst)
}

// PrimaryHomeNode is HomeNode read from the primary only, for those
// about to change where the mail is (a move, a purge): a replica that
// lags could name the home the account had before its last move.
func (s *Store) PrimaryHomeNode(ctx context.Context, accountID string) (string, error) {
	return homeNode(ctx, accountID, func(ctx context.Context, fn func(*gorm.DB) error) error {
		return fn(s.db.WithContext(ctx))
	})
}

// homeNode is HomeNode through read.
func homeNode(ctx context.Context, accountID string, read func(context.Context, func(*gorm.DB) error) error) (string, error) {
	var row struct{ HomeNode sql.NullString }
	err := read(ctx, func(db *gorm.DB) error {
		return db.Table("accounts").
			Select("home_node").Where("id = ?", accountID).Take(&row).Error
	})
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
	// The claim is read back from the primary, which holds it now.
	got, err := homeNode(ctx, accountID, s.ReadPrimaryFirst)
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
	b, err := countHomes(s.db.WithContext(ctx), nodes)
	if err != nil {
		return "", err
	}
	return b.least(), nil
}

// SetHomeBacks names the back nodes that accounts are homed on when
// they are created, in the order of the cluster's configuration; nil,
// as on a node that is not part of a cluster, leaves new accounts
// without a home. It is set once, before the store is used.
func (s *Store) SetHomeBacks(nodes []string) {
	s.homeBacks = slices.Clone(nodes)
}

// AssignHomes records a home for each of the accounts ids, just
// created within tx: the back among those SetHomeBacks named that the
// fewest accounts name as home, the earliest on a tie, counting the
// ones given before it. The homes are counted once, so an import of
// thousands of accounts costs one count and a few updates. Accounts
// that have a home keep it. With no backs named it does nothing.
func (s *Store) AssignHomes(tx *gorm.DB, ids []string) error {
	if len(s.homeBacks) == 0 || len(ids) == 0 {
		return nil
	}
	b, err := countHomes(tx, s.homeBacks)
	if err != nil {
		return err
	}
	picked := map[string][]string{}
	for _, id := range ids {
		n := b.least()
		picked[n] = append(picked[n], id)
		b.count[n]++
	}
	for _, n := range b.nodes {
		for chunk := range slices.Chunk(picked[n], homeBatch) {
			err := tx.Table("accounts").Where("id IN ? AND home_node IS NULL", chunk).
				Update("home_node", n).Error
			if err != nil {
				return fmt.Errorf("directory: assign homes on %s: %w", n, err)
			}
		}
	}
	return nil
}

// homeBatch bounds the accounts one update of homes names.
const homeBatch = 1000

// homeCounts are the accounts homed on each of some nodes.
type homeCounts struct {
	nodes []string
	count map[string]int64
}

// countHomes counts the accounts homed on each of nodes.
func countHomes(db *gorm.DB, nodes []string) (homeCounts, error) {
	var rows []struct {
		HomeNode string
		N        int64
	}
	err := db.Table("accounts").
		Select("home_node, COUNT(*) AS n").
		Where("home_node IN ?", nodes).
		Group("home_node").Scan(&rows).Error
	if err != nil {
		return homeCounts{}, fmt.Errorf("directory: count homes: %w", err)
	}
	b := homeCounts{nodes: nodes, count: map[string]int64{}}
	for _, r := range rows {
		b.count[r.HomeNode] = r.N
	}
	return b, nil
}

// least answers the node with the fewest accounts, the first on a tie.
func (b homeCounts) least() string {
	best := b.nodes[0]
	for _, n := range b.nodes[1:] {
		if b.count[n] < b.count[best] {
			best = n
		}
	}
	return best
}
