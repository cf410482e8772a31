package directory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"gorm.io/gorm"
)

// PurgeExpired removes the deleted accounts whose retention ended at or
// before now, and answers the ids of those it removed.
//
// For each account the mail goes first (RemoveMailbox, when set), then, in one
// transaction, the directory rows: the account, its aliases, and its
// person with the person's post links and group memberships. The change
// log keeps a "purge" row for each with the record as it was. When the
// mail cannot be removed the account is left as it is, logged, and
// tried again on the next run, so no mailbox is ever orphaned by a
// removed account; the error of the first such account is answered
// after the others were tried. Ids are never reused: new records get new
// version 7 UUIDs, and the freed addresses and logins may be given to
// someone else.
func (l *Lifecycle) PurgeExpired(ctx context.Context, now time.Time) ([]string, error) {
	var due []Account
	err := l.Store.db.WithContext(ctx).
		Where("status = ? AND purge_after <= ?", AccountDeleted, now.UTC()).
		Order("purge_after, id").Find(&due).Error
	if err != nil {
		return nil, fmt.Errorf("directory: find accounts to purge: %w", err)
	}
	var purged []string
	var firstErr error
	for _, a := range due {
		if err := l.purgeOne(ctx, a, now.UTC()); err != nil {
			l.log().Error("account purge failed", slog.String("account", a.ID), slog.Any("err", err))
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		purged = append(purged, a.ID)
		l.log().Info("account purged", slog.String("account", a.ID))
	}
	return purged, firstErr
}

func (l *Lifecycle) purgeOne(ctx context.Context, a Account, now time.Time) error {
	if l.RemoveMailbox != nil {
		if err := l.RemoveMailbox(ctx, a.ID); err != nil {
			return fmt.Errorf("directory: purge account %s: remove mailbox: %w", a.ID, err)
		}
	} else {
		l.log().Warn("account purged without its mail; remove the folder by hand",
			slog.String("account", a.ID))
	}

	err := l.tx(ctx, func(tx *gorm.DB) error {
		// Look again under lock: a restore may have won the race.
		var cur Account
		err := l.locked(tx).Where("id = ?", a.ID).Take(&cur).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if cur.Status != AccountDeleted || cur.PurgeAfter == nil || cur.PurgeAfter.After(now) {
			return nil
		}
		aliases, err := aliasesOf(tx, cur.ID)
		if err != nil {
			return err
		}
		if err := tx.Where("account_id = ?", cur.ID).Delete(&Alias{}).Error; err != nil {
			return err
		}
		if err := tx.Where("id = ?", cur.ID).Delete(&Account{}).Error; err != nil {
			return err
		}
		if err := l.logChange(tx, EntityAccount, cur.ID, OpPurge, accountRecord{cur, aliases}, nil); err != nil {
			return err
		}
		if cur.PersonID == nil {
			return nil
		}

		var p Person
		err = tx.Where("id = ?", *cur.PersonID).Take(&p).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := tx.Where("person_id = ?", p.ID).Delete(&PersonPost{}).Error; err != nil {
			return err
		}
		err = tx.Where("member_kind = ? AND member_id = ?", MemberPerson, p.ID).
			Delete(&GroupMember{}).Error
		if err != nil {
			return err
		}
		if err := tx.Where("id = ?", p.ID).Delete(&Person{}).Error; err != nil {
			return err
		}
		return l.logChange(tx, EntityPerson, p.ID, OpPurge, p, nil)
	})
	if err != nil {
		return fmt.Errorf("directory: purge account %s: %w", a.ID, err)
	}
	return nil
}

// RunPurger calls PurgeExpired every interval until ctx ends. Failures
// are logged and retried at the next tick; the mail of an account whose
// purge failed is never left without its account.
func (l *Lifecycle) RunPurger(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = time.Hour
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := l.PurgeExpired(ctx, l.now()); err != nil && ctx.Err() == nil {
			l.log().Warn("purge run incomplete; retrying at the next tick", slog.Any("err", err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
