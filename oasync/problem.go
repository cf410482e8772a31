package oasync

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrMalformed is matched (with errors.Is) by the *InvalidError answered
// for input that is not JSON, or not gzip where it claims to be.
var ErrMalformed = errors.New("oasync: malformed input")

// InvalidError refuses a whole snapshot. It lists every problem found;
// nothing was written.
type InvalidError struct {
	Problems []Problem
	// cause is ErrMalformed, wrapped with the decoder's error, when the
	// input could not be decoded.
	cause error
}

// Problem is one reason to refuse the input, with the element it is about.
type Problem struct {
	// Index is the element's position in the array, from 0; -1 when the
	// problem is about the input as a whole (the envelope, the syntax).
	Index int    `json:"index"`
	ID    string `json:"id,omitempty"`
	Type  string `json:"type,omitempty"`
	Name  string `json:"name,omitempty"`
	// Field is the element's field at fault, in EKP's spelling.
	Field string `json:"field,omitempty"`
	// Offset is the byte offset of malformed JSON; see Message for which
	// text it counts in.
	Offset  *int64 `json:"offset,omitempty"`
	Message string `json:"message"`
}

// String names the problem in one line.
func (p Problem) String() string {
	var b strings.Builder
	if p.Index >= 0 {
		fmt.Fprintf(&b, "element %d", p.Index)
		var attrs []string
		if p.Type != "" {
			attrs = append(attrs, p.Type)
		}
		if p.ID != "" {
			attrs = append(attrs, "id "+p.ID)
		}
		if p.Name != "" {
			attrs = append(attrs, fmt.Sprintf("name %q", p.Name))
		}
		if len(attrs) > 0 {
			fmt.Fprintf(&b, " (%s)", strings.Join(attrs, ", "))
		}
		b.WriteString(": ")
	}
	if p.Field != "" {
		fmt.Fprintf(&b, "%s: ", p.Field)
	}
	b.WriteString(p.Message)
	return b.String()
}

// shownProblems is how many problems Error spells out.
const shownProblems = 10

// Error says the snapshot was refused and names the first problems.
func (e *InvalidError) Error() string {
	var b strings.Builder
	n := len(e.Problems)
	fmt.Fprintf(&b, "oasync: input refused, %d problem", n)
	if n != 1 {
		b.WriteString("s")
	}
	for i, p := range e.Problems {
		if i == shownProblems {
			fmt.Fprintf(&b, "; and %d more", n-shownProblems)
			break
		}
		b.WriteString("; ")
		b.WriteString(p.String())
	}
	return b.String()
}

// Unwrap answers the decoding error for malformed input, else nil.
func (e *InvalidError) Unwrap() error { return e.cause }

// problems collects Problems while the input is checked.
type problems struct {
	list []Problem
}

func (ps *problems) add(el *element, field, format string, args ...any) {
	p := Problem{Index: -1, Field: field, Message: fmt.Sprintf(format, args...)}
	if el != nil {
		p.Index, p.ID, p.Type, p.Name = el.Index, clip(string(el.ID)), clip(el.Type), clip(el.Name)
	}
	ps.list = append(ps.list, p)
}

// err answers the refusal, problems in input order, or nil.
func (ps *problems) err() error {
	if len(ps.list) == 0 {
		return nil
	}
	slices.SortStableFunc(ps.list, func(a, b Problem) int { return cmp.Compare(a.Index, b.Index) })
	return &InvalidError{Problems: ps.list}
}

// malformed answers the refusal for input that cannot be decoded. offset
// is -1 when unknown.
func malformed(cause error, offset int64, format string, args ...any) error {
	p := Problem{Index: -1, Message: fmt.Sprintf(format, args...)}
	if offset >= 0 {
		p.Offset = &offset
	}
	return &InvalidError{
		Problems: []Problem{p},
		cause:    fmt.Errorf("%w: %w", ErrMalformed, cause),
	}
}

// describe names an element for messages about another one.
func describe(el *element) string {
	s := fmt.Sprintf("element %d (%s, id %s", el.Index, clip(el.Type), clip(string(el.ID)))
	if el.Name != "" {
		s += fmt.Sprintf(", name %q", clip(el.Name))
	}
	return s + ")"
}

// clipRunes is how much of an id or name a problem quotes.
const clipRunes = 64

// clip shortens a value quoted in a problem, so that a 10 MB name in a
// hostile payload names its element without being echoed back whole into
// the answer and the log.
func clip(v string) string {
	n := 0
	for i := range v {
		if n == clipRunes {
			return v[:i] + "…"
		}
		n++
	}
	return v
}
