package directory

import (
	"time"

	"github.com/google/uuid"
)

// Kinds of org unit.
const (
	UnitOrg     = "org"
	UnitDept    = "dept"
	UnitHolding = "holding"
)

// Kinds of person.
const (
	PersonStaff   = "staff"
	PersonShared  = "shared"
	PersonService = "service"
)

// Person statuses. A person who leaves the OA is "left": the record is
// kept, and so is the mailbox, but the account is disabled.
const (
	PersonActive = "active"
	PersonLeft   = "left"
)

// Account statuses. A deleted account keeps its rows, its mail and its
// addresses until its PurgeAfter time, and may be restored until then; it
// receives no mail and cannot log in.
const (
	AccountEnabled  = "enabled"
	AccountDisabled = "disabled"
	AccountDeleted  = "deleted"
)

// Kinds of group member.
const (
	MemberPerson = "person"
	MemberUnit   = "unit"
	MemberPost   = "post"
)

// NewID makes a fresh record id: a version 7 UUID, ordered by time so that
// new rows land at the end of the primary key's index.
func NewID() string {
	return uuid.Must(uuid.NewV7()).String()
}

// OrgUnit is a node of the org tree.
type OrgUnit struct {
	ID          string  `gorm:"primaryKey" json:"id"`
	OAID        *string `gorm:"column:oa_id" json:"oa_id,omitempty"`
	Kind        string  `json:"kind"`
	Name        string  `json:"name"`
	ParentID    *string `json:"parent_id,omitempty"`
	SortOrder   int     `json:"sort_order"`
	Available   bool    `json:"available"`
	OAAlterTime string  `gorm:"column:oa_alter_time" json:"-"`

	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Post is a position in a department.
type Post struct {
	ID          string  `gorm:"primaryKey" json:"id"`
	OAID        *string `gorm:"column:oa_id" json:"oa_id,omitempty"`
	Name        string  `json:"name"`
	UnitID      *string `json:"unit_id,omitempty"`
	SortOrder   int     `json:"sort_order"`
	Available   bool    `json:"available"`
	OAAlterTime string  `gorm:"column:oa_alter_time" json:"-"`

	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Person is someone (or, for shared mailboxes, something) that holds a
// mail account.
type Person struct {
	ID          string  `gorm:"primaryKey" json:"id"`
	OAID        *string `gorm:"column:oa_id" json:"oa_id,omitempty"`
	Kind        string  `json:"kind"`
	Login       string  `json:"login"`
	LoginLower  string  `json:"-"`
	DisplayName string  `json:"display_name"`
	Nickname    string  `json:"nickname,omitempty"`
	EmployeeNo  string  `json:"employee_no,omitempty"`
	// Mobile is the number normalised to digits (a leading "+86" and
	// separators removed); MobileRaw is what the OA sent.
	Mobile      string  `json:"mobile,omitempty"`
	MobileRaw   string  `json:"mobile_raw,omitempty"`
	WorkPhone   string  `json:"work_phone,omitempty"`
	Title       string  `json:"title,omitempty"`
	Sex         string  `json:"sex,omitempty"`
	AltEmail    string  `json:"alt_email,omitempty"`
	UnitID      *string `json:"unit_id,omitempty"`
	SortOrder   int     `json:"sort_order"`
	Status      string  `json:"status"`
	OAAlterTime string  `gorm:"column:oa_alter_time" json:"-"`

	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// TableName tells gorm the table's name; "persons" would be its guess.
func (Person) TableName() string { return "people" }

// PersonPost links a person to a post they hold.
type PersonPost struct {
	PersonID string `gorm:"primaryKey"`
	PostID   string `gorm:"primaryKey"`
}

// Account is a mail account. Its id names the mailbox folder in the store,
// so the address may change without moving mail.
type Account struct {
	ID                string     `gorm:"primaryKey" json:"id"`
	PersonID          *string    `json:"person_id,omitempty"`
	Address           string     `json:"address"`
	Status            string     `json:"status"`
	PasswordHash      string     `json:"-"`
	PasswordChangedAt *time.Time `json:"password_changed_at,omitempty"`
	// QuotaBytes bounds the mailbox; zero means no limit.
	QuotaBytes int64      `json:"quota_bytes"`
	DeletedAt  *time.Time `json:"deleted_at,omitempty"`
	PurgeAfter *time.Time `json:"purge_after,omitempty"`

	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Group is an OA group.
type Group struct {
	ID          string  `gorm:"primaryKey" json:"id"`
	OAID        *string `gorm:"column:oa_id" json:"oa_id,omitempty"`
	Name        string  `json:"name"`
	Available   bool    `json:"available"`
	OAAlterTime string  `gorm:"column:oa_alter_time" json:"-"`

	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// TableName tells gorm the table's name; "groups" is a reserved word in
// MySQL 8.
func (Group) TableName() string { return "org_groups" }

// GroupMember is one member of a group.
type GroupMember struct {
	GroupID    string `gorm:"primaryKey"`
	MemberKind string `gorm:"primaryKey"`
	MemberID   string `gorm:"primaryKey"`
}

// Change is one row of the change log, which is also the audit trail.
// Data is the record as it stands after the change, in JSON; Before is
// the record as it was (nil for a creation or where unknown).
type Change struct {
	Seq      int64 `gorm:"primaryKey;autoIncrement"`
	At       time.Time
	Entity   string
	EntityID string
	Op       string
	Data     string
	Before   *string `gorm:"column:before_data"`
	// Actor says who made the change: "api:<key name>", "cli:<user>",
	// "oa:<source>". See WithActor.
	Actor string
}

// TableName tells gorm the table's name.
func (Change) TableName() string { return "change_log" }

// Change operations.
const (
	OpCreate  = "create"
	OpUpdate  = "update"
	OpDisable = "disable"
	OpEnable  = "enable"
	OpDelete  = "delete"
	OpRestore = "restore"
	OpPurge   = "purge"
)

// APIKey is a credential for the HTTP API. Only the SHA-256 digest of the
// secret is kept: keys are long random strings, so a slow hash would add
// nothing but latency to every request.
type APIKey struct {
	ID         string `gorm:"primaryKey"`
	Name       string
	SecretHash string
	Scopes     string
	CreatedAt  time.Time
	LastUsedAt *time.Time
	RevokedAt  *time.Time
}

// TableName tells gorm the table's name.
func (APIKey) TableName() string { return "api_keys" }
