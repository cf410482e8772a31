package ldapmirror

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/egretair/egret/directory"
)

// CursorName is the mirror's row in mirror_cursors.
const CursorName = "ldap"

// cursorRow is one consumer's place in the change log.
type cursorRow struct {
	Name      string `gorm:"primaryKey"`
	Seq       int64
	UpdatedAt time.Time
}

func (cursorRow) TableName() string { return "mirror_cursors" }

// readCursor answers the last change applied, and false when the
// mirror has never finished a pass.
func readCursor(ctx context.Context, s *directory.Store) (int64, bool, error) {
	var c cursorRow
	err := s.DB().WithContext(ctx).Where("name = ?", CursorName).Take(&c).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("ldapmirror: read cursor: %w", err)
	}
	return c.Seq, true, nil
}

// writeCursor records that every change up to seq is in LDAP. It is
// written only after the server acknowledged them, so a crash between
// the two replays a batch, which changes nothing the second time.
func writeCursor(ctx context.Context, s *directory.Store, seq int64) error {
	c := cursorRow{Name: CursorName, Seq: seq, UpdatedAt: time.Now().UTC()}
	err := s.DB().WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "name"}},
		DoUpdates: clause.AssignmentColumns([]string{"seq", "updated_at"}),
	}).Create(&c).Error
	if err != nil {
		return fmt.Errorf("ldapmirror: write cursor %d: %w", seq, err)
	}
	return nil
}

// Lag is how far the mirror is behind the change log.
type Lag struct {
	// Cursor is the last change applied; Started is false before the
	// first full pass.
	Cursor  int64 `json:"cursor"`
	Started bool  `json:"started"`
	// Head is the last change in the log.
	Head int64 `json:"head"`
	// Rows is Head - Cursor.
	Rows int64 `json:"rows"`
	// Oldest is the time of the first change not yet applied; Seconds
	// is how long ago that was (0 when nothing waits).
	Oldest  time.Time `json:"oldest,omitempty"`
	Seconds float64   `json:"seconds"`
}

// Status answers the mirror's lag, read from the database alone: it
// works while LDAP or the mirror is down.
func Status(ctx context.Context, s *directory.Store) (*Lag, error) {
	cur, started, err := readCursor(ctx, s)
	if err != nil {
		return nil, err
	}
	head, err := headSeq(ctx, s)
	if err != nil {
		return nil, err
	}
	lag := &Lag{Cursor: cur, Started: started, Head: head, Rows: max(0, head-cur)}
	if lag.Rows > 0 {
		var c directory.Change
		err := s.DB().WithContext(ctx).Where("seq > ?", cur).Order("seq").Take(&c).Error
		if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, fmt.Errorf("ldapmirror: read change log: %w", err)
		}
		if err == nil {
			lag.Oldest = c.At.UTC()
			lag.Seconds = max(0, time.Since(c.At).Seconds())
		}
	}
	return lag, nil
}
