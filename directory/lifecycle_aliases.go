package directory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"gorm.io/gorm"
)

// Alias is a further address of an account: mail to it is delivered to
// the account. An address is either one account's address or one
// alias, never both and never twice.
type Alias struct {
	Address   string    `gorm:"primaryKey" json:"address"`
	AccountID string    `json:"account_id"`
	CreatedAt time.Time `json:"created_at"`
}

// TableName tells gorm the table's name.
func (Alias) TableName() string { return "aliases" }

func lower(s string) string { return strings.ToLower(s) }

// aliasesOf answers an account's alias addresses in order.
func aliasesOf(tx *gorm.DB, accountID string) ([]string, error) {
	list := []string{}
	err := tx.Model(&Alias{}).Where("account_id = ?", accountID).
		Order("address").Pluck("address", &list).Error
	if err != nil {
		return nil, fmt.Errorf("aliases of account %s: %w", accountID, err)
	}
	return list, nil
}

// addressFree refuses an address that an account, alias or list holds, other
// than the account self (which may reclaim its own alias). Deleted
// accounts keep their addresses until purged, so an address is never
// handed on while its mail could still be restored.
func (l *Lifecycle) addressFree(tx *gorm.DB, field, addr, self string) error {
	var a Account
	err := l.locked(tx).Where("address = ?", addr).Take(&a).Error
	if err == nil && a.ID != self {
		msg := fmt.Sprintf("address %s belongs to another account", addr)
		if a.Status == AccountDeleted {
			msg = fmt.Sprintf("address %s belongs to a deleted account still in its retention period", addr)
		}
		return &ConflictError{Field: field, Message: msg, Holders: []Holder{{Kind: EntityAccount, ID: a.ID, Name: addr}}}
	}
	if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
		return err
	}
	var al Alias
	err = l.locked(tx).Where("address = ?", addr).Take(&al).Error
	if err == nil && al.AccountID != self {
		return &ConflictError{Field: field,
			Message: fmt.Sprintf("address %s is an alias of another account", addr),
			Holders: []Holder{{Kind: EntityAccount, ID: al.AccountID, Name: addr}}}
	}
	if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
		return err
	}
	if ml, err := l.listHolding(tx, addr); err != nil || ml != nil {
		if err != nil {
			return err
		}
		return &ConflictError{Field: field,
			Message: fmt.Sprintf("address %s is the list of %s %s", addr, ml.OwnerKind, ml.OwnerID),
			Holders: []Holder{{Kind: ml.OwnerKind, ID: ml.OwnerID, Name: addr}}}
	}
	return nil
}

// Aliases answers the aliases of a user's account.
func (l *Lifecycle) Aliases(ctx context.Context, personID string) ([]Alias, error) {
	acct, err := l.accountOf(ctx, personID)
	if err != nil {
		return nil, err
	}
	list := []Alias{}
	err = l.Store.db.WithContext(ctx).Where("account_id = ?", acct.ID).Order("address").Find(&list).Error
	if err != nil {
		return nil, fmt.Errorf("directory: aliases of account %s: %w", acct.ID, err)
	}
	return list, nil
}

func (l *Lifecycle) accountOf(ctx context.Context, personID string) (*Account, error) {
	var a Account
	err := l.Store.db.WithContext(ctx).Where("person_id = ?", personID).Take(&a).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fmt.Errorf("%w: user %q or their account", ErrNotFound, personID)
	}
	if err != nil {
		return nil, fmt.Errorf("directory: account of user %s: %w", personID, err)
	}
	return &a, nil
}

// AddAlias gives a user's account a further address.
func (l *Lifecycle) AddAlias(ctx context.Context, personID, address string) (*Alias, error) {
	addr, err := l.checkAddress("address", address)
	if err != nil {
		return nil, err
	}
	al := Alias{Address: addr, CreatedAt: l.now()}
	err = l.tx(ctx, func(tx *gorm.DB) error {
		_, a, err := l.lockUser(tx, personID)
		if err != nil {
			return err
		}
		if a.Address == addr {
			return &ConflictError{Field: "address", Message: fmt.Sprintf("%s is already the account's own address", addr)}
		}
		if err := l.addressFree(tx, "address", addr, ""); err != nil {
			return err
		}
		before, err := aliasesOf(tx, a.ID)
		if err != nil {
			return err
		}
		al.AccountID = a.ID
		if err := tx.Create(&al).Error; err != nil {
			return err
		}
		after, err := aliasesOf(tx, a.ID)
		if err != nil {
			return err
		}
		return l.logChange(tx, EntityAccount, a.ID, OpUpdate, accountRecord{*a, before}, accountRecord{*a, after})
	})
	if err != nil {
		return nil, l.wrap(err, "add alias to user", personID)
	}
	l.log().Info("alias added", slog.String("account", al.AccountID), slog.String("alias", addr))
	return &al, nil
}

// RemoveAlias takes an alias from a user's account. The address is free
// for anyone afterwards.
func (l *Lifecycle) RemoveAlias(ctx context.Context, personID, address string) error {
	addr := NormAddress(address)
	var acctID string
	err := l.tx(ctx, func(tx *gorm.DB) error {
		_, a, err := l.lockUser(tx, personID)
		if err != nil {
			return err
		}
		acctID = a.ID
		before, err := aliasesOf(tx, a.ID)
		if err != nil {
			return err
		}
		res := tx.Where("address = ? AND account_id = ?", addr, a.ID).Delete(&Alias{})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return fmt.Errorf("%w: alias %q of user %s", ErrNotFound, address, personID)
		}
		after, err := aliasesOf(tx, a.ID)
		if err != nil {
			return err
		}
		return l.logChange(tx, EntityAccount, a.ID, OpUpdate, accountRecord{*a, before}, accountRecord{*a, after})
	})
	if err != nil {
		return l.wrap(err, "remove alias of user", personID)
	}
	l.log().Info("alias removed", slog.String("account", acctID), slog.String("alias", addr))
	return nil
}

// ChangeAddress gives a user's account a new address. The old one stays
// as an alias, so mail sent to it still arrives. The new address may be
// one of the account's own aliases, which then becomes its address.
func (l *Lifecycle) ChangeAddress(ctx context.Context, personID, address string) (*User, error) {
	addr, err := l.checkAddress("address", address)
	if err != nil {
		return nil, err
	}
	var acctID string
	err = l.tx(ctx, func(tx *gorm.DB) error {
		_, a, err := l.lockUser(tx, personID)
		if err != nil {
			return err
		}
		acctID = a.ID
		if a.Address == addr {
			return nil
		}
		if err := l.addressFree(tx, "address", addr, a.ID); err != nil {
			return err
		}
		before, err := aliasesOf(tx, a.ID)
		if err != nil {
			return err
		}
		if err := tx.Where("address = ?", addr).Delete(&Alias{}).Error; err != nil {
			return err
		}
		now := l.now()
		err = tx.Model(&Account{}).Where("id = ?", a.ID).
			Updates(map[string]any{"address": addr, "updated_at": now}).Error
		if err != nil {
			return err
		}
		if err := tx.Create(&Alias{Address: a.Address, AccountID: a.ID, CreatedAt: now}).Error; err != nil {
			return err
		}
		var after Account
		if err := tx.Where("id = ?", a.ID).Take(&after).Error; err != nil {
			return err
		}
		afterAliases, err := aliasesOf(tx, a.ID)
		if err != nil {
			return err
		}
		return l.logChange(tx, EntityAccount, a.ID, OpUpdate,
			accountRecord{*a, before}, accountRecord{after, afterAliases})
	})
	if err != nil {
		return nil, l.wrap(err, "change address of user", personID)
	}
	l.log().Info("address changed", slog.String("account", acctID), slog.String("address", addr))
	return l.Store.GetUser(ctx, personID)
}
