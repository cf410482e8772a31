package directory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"gorm.io/gorm"
)

// NewUser is a person and mail account to create. Staff may carry the
// OA's id; shared and service mailboxes exist only in egret and may not.
type NewUser struct {
	// Kind is "staff" (the default), "shared" or "service".
	Kind        string
	Login       string
	DisplayName string
	OAID        string
	EmployeeNo  string
	// UnitID is the unit's id or OA id; empty leaves the person outside
	// the tree.
	UnitID string
	// Address is the mail address; empty means the login at the mail
	// domain.
	Address string
	// MobileRaw is the number as sent, Mobile its normalised digits.
	MobileRaw  string
	Mobile     string
	WorkPhone  string
	Title      string
	QuotaBytes int64
	// Password, when set, is the first mail password.
	Password string
}

// UserChange carries the attributes of a user to change; nil leaves one
// as it is.
type UserChange struct {
	DisplayName *string
	// MobileRaw is the number as sent; Mobile its digits, set with it.
	MobileRaw  *string
	Mobile     string
	WorkPhone  *string
	Title      *string
	QuotaBytes *int64
}

// accountRecord is an account as the change log carries it, with its
// aliases, so that one row tells a mirror every address of the account.
type accountRecord struct {
	Account
	Aliases []string `json:"aliases"`
}

// CreateUser creates a person and their mail account.
func (l *Lifecycle) CreateUser(ctx context.Context, in NewUser) (*User, error) {
	if in.Kind == "" {
		in.Kind = PersonStaff
	}
	switch in.Kind {
	case PersonStaff:
	case PersonShared, PersonService:
		if in.OAID != "" {
			return nil, fieldErr("oa_id", "a %s mailbox is not in the OA and has no OA id", in.Kind)
		}
	default:
		return nil, fieldErr("kind", "%q: want staff, shared or service", in.Kind)
	}
	if err := checkLogin(in.Login); err != nil {
		return nil, err
	}
	checks := []error{
		checkText("display_name", in.DisplayName, maxNameLen, true),
		checkOAID("oa_id", in.OAID),
		checkText("employee_no", in.EmployeeNo, maxPhoneLen, false),
		checkText("unit_id", in.UnitID, maxOAIDLen, false),
		checkMobile(in.MobileRaw, in.Mobile),
		checkPhone("work_phone", in.WorkPhone),
		checkText("title", in.Title, maxNameLen, false),
	}
	for _, e := range checks {
		if e != nil {
			return nil, e
		}
	}
	if in.QuotaBytes < 0 {
		return nil, fieldErr("quota_bytes", "must not be negative")
	}
	key := LoginKey(in.Login)
	addrIn, addrField := in.Address, "address"
	if addrIn == "" {
		addrIn, addrField = key+"@"+l.Domain, "login"
	}
	addr, err := l.checkAddress(addrField, addrIn)
	if err != nil {
		return nil, err
	}
	var hash string
	if in.Password != "" {
		if len([]rune(in.Password)) < MinPasswordLength {
			return nil, fieldErr("password", "must have at least %d characters", MinPasswordLength)
		}
		if hash, err = HashPassword(in.Password); err != nil {
			return nil, err
		}
	}

	now := l.now()
	p := Person{
		ID: NewID(), Kind: in.Kind, Login: in.Login, LoginLower: key,
		DisplayName: in.DisplayName, EmployeeNo: in.EmployeeNo,
		Mobile: in.Mobile, MobileRaw: in.MobileRaw, WorkPhone: in.WorkPhone,
		Title: in.Title, Status: PersonActive, CreatedAt: now, UpdatedAt: now,
	}
	if in.OAID != "" {
		p.OAID = &in.OAID
	}
	a := Account{
		ID: NewID(), PersonID: &p.ID, Address: addr, Status: AccountEnabled,
		PasswordHash: hash, QuotaBytes: in.QuotaBytes, CreatedAt: now, UpdatedAt: now,
	}
	if hash != "" {
		a.PasswordChangedAt = &now
	}
	err = l.tx(ctx, func(tx *gorm.DB) error {
		if in.UnitID != "" {
			u, err := unitIn(tx, in.UnitID)
			if errors.Is(err, ErrNotFound) {
				return fieldErr("unit_id", "no org unit %q", in.UnitID)
			}
			if err != nil {
				return err
			}
			p.UnitID = &u.ID
		}
		if err := l.loginFree(tx, in.Login); err != nil {
			return err
		}
		if in.OAID != "" {
			var other Person
			err := tx.Where("oa_id = ?", in.OAID).Take(&other).Error
			if err == nil {
				return &ConflictError{Field: "oa_id", Message: fmt.Sprintf("OA id %q belongs to another person", in.OAID),
					Holders: []Holder{{Kind: EntityPerson, ID: other.ID, Name: other.DisplayName}}}
			}
			if !errors.Is(err, gorm.ErrRecordNotFound) {
				return err
			}
		}
		if err := l.addressFree(tx, addrField, addr, ""); err != nil {
			return err
		}
		if err := tx.Create(&p).Error; err != nil {
			return err
		}
		if err := tx.Create(&a).Error; err != nil {
			return err
		}
		if err := l.Store.AssignHomes(tx, []string{a.ID}); err != nil {
			return err
		}
		if err := l.logChange(tx, EntityPerson, p.ID, OpCreate, nil, p); err != nil {
			return err
		}
		return l.logChange(tx, EntityAccount, a.ID, OpCreate, nil, accountRecord{a, []string{}})
	})
	if err != nil {
		return nil, l.wrap(err, "create user", in.Login)
	}
	l.log().Info("account created", slog.String("account", a.ID), slog.String("person", p.ID))
	return l.Store.GetUser(ctx, p.ID)
}

// loginFree refuses a login that another person holds, compared as
// LoginKey does. Logins the OA sync stored are folded by case only, so
// both forms are looked for.
func (l *Lifecycle) loginFree(tx *gorm.DB, login string) error {
	var other Person
	err := tx.Where("login_lower IN ?", []string{LoginKey(login), lower(login)}).Take(&other).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return &ConflictError{Field: "login",
		Message: fmt.Sprintf("login %q is taken by %q (logins are compared ignoring case and width)", login, other.Login),
		Holders: []Holder{{Kind: EntityPerson, ID: other.ID, Name: other.DisplayName}}}
}

// UpdateUser changes a user's attributes.
func (l *Lifecycle) UpdateUser(ctx context.Context, personID string, ch UserChange) (*User, error) {
	var errs []error
	if ch.DisplayName != nil {
		errs = append(errs, checkText("display_name", *ch.DisplayName, maxNameLen, true))
	}
	if ch.MobileRaw != nil {
		errs = append(errs, checkMobile(*ch.MobileRaw, ch.Mobile))
	}
	if ch.WorkPhone != nil {
		errs = append(errs, checkPhone("work_phone", *ch.WorkPhone))
	}
	if ch.Title != nil {
		errs = append(errs, checkText("title", *ch.Title, maxNameLen, false))
	}
	if ch.QuotaBytes != nil && *ch.QuotaBytes < 0 {
		errs = append(errs, fieldErr("quota_bytes", "must not be negative"))
	}
	for _, e := range errs {
		if e != nil {
			return nil, e
		}
	}

	err := l.tx(ctx, func(tx *gorm.DB) error {
		p, a, err := l.lockUser(tx, personID)
		if err != nil {
			return err
		}
		now := l.now()
		after := *p
		set := map[string]any{}
		if ch.DisplayName != nil && *ch.DisplayName != p.DisplayName {
			after.DisplayName, set["display_name"] = *ch.DisplayName, *ch.DisplayName
		}
		if ch.MobileRaw != nil && (*ch.MobileRaw != p.MobileRaw || ch.Mobile != p.Mobile) {
			after.MobileRaw, set["mobile_raw"] = *ch.MobileRaw, *ch.MobileRaw
			after.Mobile, set["mobile"] = ch.Mobile, ch.Mobile
		}
		if ch.WorkPhone != nil && *ch.WorkPhone != p.WorkPhone {
			after.WorkPhone, set["work_phone"] = *ch.WorkPhone, *ch.WorkPhone
		}
		if ch.Title != nil && *ch.Title != p.Title {
			after.Title, set["title"] = *ch.Title, *ch.Title
		}
		if len(set) > 0 {
			after.UpdatedAt, set["updated_at"] = now, now
			if err := tx.Model(&Person{}).Where("id = ?", p.ID).Updates(set).Error; err != nil {
				return err
			}
			if err := l.logChange(tx, EntityPerson, p.ID, OpUpdate, p, after); err != nil {
				return err
			}
		}
		if ch.QuotaBytes != nil && *ch.QuotaBytes != a.QuotaBytes {
			return l.updateAccount(tx, a, OpUpdate, map[string]any{"quota_bytes": *ch.QuotaBytes})
		}
		return nil
	})
	if err != nil {
		return nil, l.wrap(err, "update user", personID)
	}
	return l.Store.GetUser(ctx, personID)
}

// MoveUser puts a user in another unit.
func (l *Lifecycle) MoveUser(ctx context.Context, personID, unitID string) (*User, error) {
	if err := checkText("unit_id", unitID, maxOAIDLen, true); err != nil {
		return nil, err
	}
	err := l.tx(ctx, func(tx *gorm.DB) error {
		p, _, err := l.lockUser(tx, personID)
		if err != nil {
			return err
		}
		u, err := unitIn(tx, unitID)
		if errors.Is(err, ErrNotFound) {
			return fieldErr("unit_id", "no org unit %q", unitID)
		}
		if err != nil {
			return err
		}
		if p.UnitID != nil && *p.UnitID == u.ID {
			return nil
		}
		after := *p
		after.UnitID, after.UpdatedAt = &u.ID, l.now()
		err = tx.Model(&Person{}).Where("id = ?", p.ID).
			Updates(map[string]any{"unit_id": u.ID, "updated_at": after.UpdatedAt}).Error
		if err != nil {
			return err
		}
		return l.logChange(tx, EntityPerson, p.ID, OpUpdate, p, after)
	})
	if err != nil {
		return nil, l.wrap(err, "move user", personID)
	}
	return l.Store.GetUser(ctx, personID)
}

// SetEnabled enables or disables a user's account. A deleted account is
// restored, not enabled.
func (l *Lifecycle) SetEnabled(ctx context.Context, personID string, on bool) (*User, error) {
	var acctID string
	err := l.tx(ctx, func(tx *gorm.DB) error {
		_, a, err := l.lockUser(tx, personID)
		if err != nil {
			return err
		}
		acctID = a.ID
		if a.Status == AccountDeleted {
			return &ConflictError{Field: "status", Message: fmt.Sprintf("account %s is deleted; restore it first", a.ID)}
		}
		status, op := AccountDisabled, OpDisable
		if on {
			status, op = AccountEnabled, OpEnable
		}
		if a.Status == status {
			return nil
		}
		return l.updateAccount(tx, a, op, map[string]any{"status": status})
	})
	if err != nil {
		return nil, l.wrap(err, "enable or disable user", personID)
	}
	l.log().Info("account status set", slog.String("account", acctID), slog.Bool("enabled", on))
	return l.Store.GetUser(ctx, personID)
}

// DeleteUser deletes a user's account for retention (zero means the
// Lifecycle's): it stops receiving mail and logging in at once, keeps its
// mail and addresses, and may be restored until the period ends, when
// PurgeExpired removes it.
func (l *Lifecycle) DeleteUser(ctx context.Context, personID string, retention time.Duration) (*User, error) {
	if retention < 0 || retention > MaxRetention {
		return nil, fieldErr("retention_days", "want 0 to %d days", int(MaxRetention/(24*time.Hour)))
	}
	if retention == 0 {
		retention = l.retention()
	}
	var acctID string
	var purge time.Time
	err := l.tx(ctx, func(tx *gorm.DB) error {
		_, a, err := l.lockUser(tx, personID)
		if err != nil {
			return err
		}
		acctID = a.ID
		if a.Status == AccountDeleted {
			return &ConflictError{Field: "status", Message: fmt.Sprintf("account %s is already deleted", a.ID)}
		}
		now := l.now()
		purge = now.Add(retention)
		return l.updateAccount(tx, a, OpDelete, map[string]any{
			"status": AccountDeleted, "deleted_at": now, "purge_after": purge,
		})
	})
	if err != nil {
		return nil, l.wrap(err, "delete user", personID)
	}
	l.log().Info("account deleted", slog.String("account", acctID), slog.Time("purge_after", purge))
	return l.Store.GetUser(ctx, personID)
}

// RestoreUser undoes DeleteUser while the retention period lasts. The
// account comes back enabled, or disabled when its person has left.
func (l *Lifecycle) RestoreUser(ctx context.Context, personID string) (*User, error) {
	var acctID string
	err := l.tx(ctx, func(tx *gorm.DB) error {
		p, a, err := l.lockUser(tx, personID)
		if err != nil {
			return err
		}
		acctID = a.ID
		if a.Status != AccountDeleted {
			return &ConflictError{Field: "status", Message: fmt.Sprintf("account %s is %s, not deleted", a.ID, a.Status)}
		}
		if a.PurgeAfter != nil && !l.now().Before(*a.PurgeAfter) {
			return &ConflictError{Field: "status",
				Message: fmt.Sprintf("account %s was due for purge at %s; it can no longer be restored", a.ID, a.PurgeAfter.Format(time.RFC3339))}
		}
		status := AccountEnabled
		if p.Status != PersonActive {
			status = AccountDisabled
		}
		return l.updateAccount(tx, a, OpRestore, map[string]any{
			"status": status, "deleted_at": nil, "purge_after": nil,
		})
	})
	if err != nil {
		return nil, l.wrap(err, "restore user", personID)
	}
	l.log().Info("account restored", slog.String("account", acctID))
	return l.Store.GetUser(ctx, personID)
}

// lockUser reads a person and their account for update.
func (l *Lifecycle) lockUser(tx *gorm.DB, personID string) (*Person, *Account, error) {
	var p Person
	err := l.locked(tx).Where("id = ?", personID).Take(&p).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil, fmt.Errorf("%w: user %q", ErrNotFound, personID)
	}
	if err != nil {
		return nil, nil, err
	}
	var a Account
	err = l.locked(tx).Where("person_id = ?", p.ID).Take(&a).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil, fmt.Errorf("%w: user %s has no mail account", ErrNotFound, p.ID)
	}
	if err != nil {
		return nil, nil, err
	}
	return &p, &a, nil
}

// updateAccount writes set to an account and logs the change with the
// account's aliases before and after.
func (l *Lifecycle) updateAccount(tx *gorm.DB, a *Account, op string, set map[string]any) error {
	aliases, err := aliasesOf(tx, a.ID)
	if err != nil {
		return err
	}
	set["updated_at"] = l.now()
	if err := tx.Model(&Account{}).Where("id = ?", a.ID).Updates(set).Error; err != nil {
		return err
	}
	var after Account
	if err := tx.Where("id = ?", a.ID).Take(&after).Error; err != nil {
		return err
	}
	return l.logChange(tx, EntityAccount, a.ID, op, accountRecord{*a, aliases}, accountRecord{after, aliases})
}
