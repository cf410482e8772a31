package queue

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// State is where one recipient of a message stands.
type State string

// Recipient states, as described in the package comment.
const (
	Pending   State = "pending"
	Deferred  State = "deferred"
	Delivered State = "delivered"
	Failed    State = "failed"
)

// final reports whether no more attempts are made for the state.
func (s State) final() bool {
	return s == Delivered || s == Failed
}

// Recipient is one recipient of a queued message and its state.
type Recipient struct {
	// Address is the address the message is delivered to.
	Address string `json:"address"`
	// Account is the directory id of the address's account, for logs.
	Account string `json:"account,omitempty"`
	State   State  `json:"state"`
	// Attempts counts the attempts that failed.
	Attempts int `json:"attempts,omitempty"`
	// Next is when a deferred recipient is tried again.
	Next time.Time `json:"next,omitzero"`
	// Reply is the last answer of the transport for the recipient.
	Reply string `json:"reply,omitempty"`
}

// Record is the envelope of a queued message and its recipients'
// states, as kept in spool/<id>.rec.
type Record struct {
	ID string `json:"id"`
	// From is the reverse path; empty for the null sender.
	From string `json:"from"`
	// UTF8 is set when the message came with SMTPUTF8 (RFC 6531).
	UTF8     bool      `json:"utf8,omitempty"`
	Received time.Time `json:"received"`
	// Expires is when recipients still deferred are given up on.
	Expires time.Time `json:"expires"`
	// Size and SHA256 describe the message file.
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Held stops all attempts until the message is released.
	Held bool `json:"held,omitempty"`
	// DelayNotified is set once the sender was told of a delay, so
	// that they are told once per message.
	DelayNotified bool        `json:"delay_notified,omitempty"`
	Recipients    []Recipient `json:"recipients"`
}

// recordMagic starts every record file; the number is the format.
const recordMagic = "egret-queue-record 1 "

// errDamaged marks a record or message that failed its checks.
var errDamaged = errors.New("queue: damaged")

// encodeRecord answers the bytes of a record file.
func encodeRecord(r *Record) ([]byte, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("queue: %s: encode record: %w", r.ID, err)
	}
	sum := sha256.Sum256(body)
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s%d %s\n", recordMagic, len(body), hex.EncodeToString(sum[:]))
	b.Write(body)
	return b.Bytes(), nil
}

// decodeRecord reads a record file, refusing one that is cut short,
// longer than it says, or whose digest differs.
func decodeRecord(b []byte) (*Record, error) {
	head, body, ok := bytes.Cut(b, []byte("\n"))
	if !ok || !bytes.HasPrefix(head, []byte(recordMagic)) {
		return nil, fmt.Errorf("%w: no record header", errDamaged)
	}
	fields := strings.Fields(string(head[len(recordMagic):]))
	if len(fields) != 2 {
		return nil, fmt.Errorf("%w: bad record header", errDamaged)
	}
	n, err := strconv.Atoi(fields[0])
	if err != nil || n != len(body) {
		return nil, fmt.Errorf("%w: record holds %d bytes, header says %s",
			errDamaged, len(body), fields[0])
	}
	sum := sha256.Sum256(body)
	if hex.EncodeToString(sum[:]) != fields[1] {
		return nil, fmt.Errorf("%w: record digest differs", errDamaged)
	}
	var r Record
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("%w: %v", errDamaged, err)
	}
	if !validID(r.ID) || len(r.Recipients) == 0 {
		return nil, fmt.Errorf("%w: record lacks id or recipients", errDamaged)
	}
	return &r, nil
}

// validID reports whether id can name files: 1 to 64 letters, digits
// and '-'.
func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' ||
			c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// ReadRecords answers the records in the queue folder dir, oldest
// first, skipping files that fail their checks. It takes no lock and is
// safe while another process runs the queue.
func ReadRecords(dir string) ([]Record, error) {
	entries, err := os.ReadDir(filepath.Join(dir, "spool"))
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	var out []Record
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".rec")
		if !ok {
			continue
		}
		r, err := ReadRecord(dir, id)
		if err != nil {
			continue
		}
		out = append(out, *r)
	}
	sortRecords(out)
	return out, nil
}

// ReadRecord answers one record of the queue folder dir; see
// ReadRecords.
func ReadRecord(dir, id string) (*Record, error) {
	if !validID(id) {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	b, err := os.ReadFile(filepath.Join(dir, "spool", id+".rec"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	r, err := decodeRecord(b)
	if err != nil {
		return nil, fmt.Errorf("queue: %s: %w", id, err)
	}
	return r, nil
}
