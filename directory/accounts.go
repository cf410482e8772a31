package directory

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"
)

// ErrBadCredentials is answered by Authenticate when the name is unknown,
// the account is disabled or the password does not match; the cases are
// not told apart.
var ErrBadCredentials = errors.New("directory: invalid credentials")

// MailAccount is an enabled account as the mail engine needs it.
type MailAccount struct {
	ID      string
	Address string
	Login   string
	// QuotaBytes bounds the mailbox; zero means no limit.
	QuotaBytes int64
}

// dummyHash is checked against when a name is unknown, so that a login
// for a missing user costs as long as one for a real user.
var dummyHash = sync.OnceValue(func() string {
	h, _ := HashPassword("egret-dummy-password")
	return h
})

// LookupAddress finds the enabled account that receives mail at address:
// the account's own address or one of its aliases. The answer carries the
// account's own address either way.
func (s *Store) LookupAddress(ctx context.Context, address string) (MailAccount, error) {
	addr := strings.ToLower(address)
	var row struct {
		ID         string
		Address    string
		Login      string
		QuotaBytes int64
	}
	// Mail for an address is delivered even while the primary is down.
	err := s.Read(ctx, func(db *gorm.DB) error {
		return db.Table("accounts").
			Select("accounts.id, accounts.address, people.login, accounts.quota_bytes").
			Joins("LEFT JOIN people ON people.id = accounts.person_id").
			Where("(accounts.address = ? OR accounts.id IN (SELECT account_id FROM aliases WHERE address = ?))"+
				" AND accounts.status = ?", addr, addr, AccountEnabled).
			Take(&row).Error
	})
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return MailAccount{}, ErrNotFound
	}
	if err != nil {
		return MailAccount{}, fmt.Errorf("directory: look up %s: %w", address, err)
	}
	return MailAccount(row), nil
}

// Authenticate checks a user name, which is a login or a mail address,
// and a password, and answers the enabled account they belong to.
func (s *Store) Authenticate(ctx context.Context, username, password string) (MailAccount, error) {
	// Sign-in decides access, so it reads the primary while it is up:
	// a disabled account or a changed password holds at once. While
	// the primary is down a replica answers, so logins go on, with a
	// password at most the replica's lag old.
	var acct *Account
	var person *Person
	err := s.ReadPrimaryFirst(ctx, func(db *gorm.DB) error {
		var err error
		acct, person, err = findAccount(db, username)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		CheckPassword(dummyHash(), password)
		return MailAccount{}, ErrBadCredentials
	}
	if err != nil {
		return MailAccount{}, err
	}
	ok, err := CheckPassword(acct.PasswordHash, password)
	if err != nil {
		return MailAccount{}, fmt.Errorf("directory: account %s: %w", acct.ID, err)
	}
	if !ok || acct.Status != AccountEnabled {
		return MailAccount{}, ErrBadCredentials
	}
	m := MailAccount{ID: acct.ID, Address: acct.Address,
		QuotaBytes: acct.QuotaBytes}
	if person != nil {
		m.Login = person.Login
	}
	return m, nil
}

// FindAccount finds an account by its id, its address, or its owner's
// login (compared without regard to case), and answers its owner too
// (nil for an account with no person).
func (s *Store) FindAccount(ctx context.Context, who string) (*Account, *Person, error) {
	return findAccount(s.db.WithContext(ctx), who)
}

// findAccount is FindAccount on db.
func findAccount(db *gorm.DB, who string) (*Account, *Person, error) {
	key := strings.ToLower(strings.TrimSpace(who))
	if key == "" {
		return nil, nil, ErrNotFound
	}

	var acct Account
	var err error
	if strings.Contains(key, "@") {
		err = db.Where("address = ?", key).Take(&acct).Error
	} else {
		err = db.Where("id = ?", key).Take(&acct).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			var p Person
			if err = db.Where("login_lower = ?", key).Take(&p).Error; err == nil {
				err = db.Where("person_id = ?", p.ID).Take(&acct).Error
			}
		}
	}
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil, ErrNotFound
	}
	if err != nil {
		return nil, nil, fmt.Errorf("directory: find account %q: %w", who, err)
	}

	if acct.PersonID == nil {
		return &acct, nil, nil
	}
	var p Person
	if err := db.Where("id = ?", *acct.PersonID).Take(&p).Error; err != nil {
		return nil, nil, fmt.Errorf("directory: account %s: owner: %w", acct.ID, err)
	}
	return &acct, &p, nil
}

// SetPassword sets the mail password of the account that who names (see
// FindAccount). The password is stored as an argon2id hash.
func (s *Store) SetPassword(ctx context.Context, who, password string) (*Account, error) {
	if len([]rune(password)) < MinPasswordLength || strings.TrimSpace(password) == "" {
		return nil, ErrWeakPassword
	}
	acct, _, err := s.FindAccount(ctx, who)
	if err != nil {
		return nil, err
	}
	hash, err := HashPassword(password)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&Account{}).Where("id = ?", acct.ID).Updates(map[string]any{
			"password_hash":       hash,
			"password_changed_at": now,
			"updated_at":          now,
		})
		if res.Error != nil {
			return res.Error
		}
		// The hash itself is not logged: the change log is read by
		// mirrors, and the LDAP mirror fetches the hash it needs.
		return appendChange(tx, now, EntityAccount, acct.ID, OpUpdate,
			map[string]any{"id": acct.ID, "password_changed_at": acct.PasswordChangedAt},
			map[string]any{"id": acct.ID, "password_changed_at": now})
	})
	if err != nil {
		return nil, fmt.Errorf("directory: set password of account %s: %w", acct.ID, err)
	}
	acct.PasswordHash = hash
	acct.PasswordChangedAt = &now
	return acct, nil
}
