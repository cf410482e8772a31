package oasync

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// maxInput bounds the decoded size of one input. The full export of
// 11,000 people is about 10 MB; the bound keeps a gzip bomb from taking
// the process's memory.
const maxInput = 512 << 20

// ekpSuccess is the returnState with which EKP's export service says the
// call succeeded.
const ekpSuccess = 2

// decoded is the input once decoded: its elements in order, every one
// with at least an index. Elements that could not be decoded have left a
// problem behind.
type decoded struct {
	elements []*element
	problems problems
	// timeStamp is the envelope's timeStamp, as sent; "" for a bare
	// array. It names a page in reports and the change log.
	timeStamp string
}

// readInput reads all of r, through gzip when it starts with gzip's magic
// bytes.
func readInput(r io.Reader) ([]byte, error) {
	br := bufio.NewReader(r)
	var src io.Reader = br
	magic, _ := br.Peek(2)
	zipped := len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b
	if zipped {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, malformed(err, -1, "gzip stream: %v", err)
		}
		defer zr.Close()
		src = zr
	}
	data, err := io.ReadAll(io.LimitReader(src, maxInput+1))
	if err != nil {
		if zipped && (errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader) ||
			errors.Is(err, io.ErrUnexpectedEOF)) {
			return nil, malformed(err, -1, "gzip stream: %v", err)
		}
		return nil, fmt.Errorf("oasync: read input: %w", err)
	}
	if len(data) > maxInput {
		return nil, &InvalidError{Problems: []Problem{{
			Index:   -1,
			Message: fmt.Sprintf("input exceeds %d MiB", maxInput>>20),
		}}}
	}
	return data, nil
}

// decode turns the input into elements. The error is an *InvalidError
// when the input as a whole is unusable (malformed, or an envelope that
// reports failure); problems with single elements are collected in the
// answer instead, so that all of them are reported together.
func decode(data []byte) (*decoded, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	start := firstNonSpace(data)
	if start == len(data) {
		return nil, malformed(io.ErrUnexpectedEOF, int64(start), "the input is empty")
	}

	switch data[start] {
	case '[':
		return decodeArray(data, "input")
	case '{':
		return decodeEnvelope(data)
	}
	err := fmt.Errorf("unexpected %q", data[start])
	return nil, malformed(err, int64(start),
		"malformed JSON at byte %d of the input: want an EKP envelope or an array of elements, got %q",
		start, truncate(string(data[start:min(len(data), start+20)]), 20))
}

// decodeEnvelope reads EKP's answer: returnState, count, and the elements
// in message, which is an array written as a JSON string (or, from some
// callers, the array itself).
func decodeEnvelope(data []byte) (*decoded, error) {
	var env map[string]json.RawMessage
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, malformedJSON(err, data, "input", "")
	}

	// Text outside message is checked here; message is checked element
	// by element below, so that the element can be named.
	var ps problems
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !utf8.ValidString(k) {
			ps.add(nil, "", "an envelope field name is not valid UTF-8")
			continue
		}
		if k == "message" {
			continue
		}
		if msg, bad := checkText(env[k]); bad {
			ps.add(nil, k, "envelope: %s", msg)
		}
	}

	state, ok := env["returnState"]
	if !ok {
		ps.add(nil, "returnState", "the envelope has no returnState, so EKP's success cannot be told")
		return nil, ps.err()
	}
	var rs json.Number
	if err := json.Unmarshal(state, &rs); err != nil || rs.String() != fmt.Sprint(ekpSuccess) {
		detail := ""
		if m, ok := env["message"]; ok && len(m) > 0 && m[0] == '"' {
			var text string
			if json.Unmarshal(m, &text) == nil && !strings.HasPrefix(strings.TrimSpace(text), "[") {
				detail = fmt.Sprintf(": %q", truncate(text, 200))
			}
		}
		ps.add(nil, "returnState",
			"EKP answered returnState %s, not %d (success); the export failed%s",
			truncate(string(state), 20), ekpSuccess, detail)
		return nil, ps.err()
	}

	msg, ok := env["message"]
	if !ok || len(msg) == 0 {
		ps.add(nil, "message", "the envelope has no message")
		return nil, ps.err()
	}
	var (
		d   *decoded
		err error
	)
	switch msg[0] {
	case '"':
		d, err = decodeArray(unquote(msg), "message")
	case '[':
		d, err = decodeArray(msg, "message")
	default:
		ps.add(nil, "message", "want the elements as an array or a string holding one, got %s",
			truncate(string(msg), 20))
		return nil, ps.err()
	}
	if err != nil {
		return nil, err
	}
	d.problems.list = append(ps.list, d.problems.list...)
	if ts, ok := env["timeStamp"]; ok {
		var v scalar
		if json.Unmarshal(ts, &v) == nil {
			d.timeStamp = truncate(strings.TrimSpace(string(v)), 40)
		}
	}

	if c, ok := env["count"]; ok {
		var n json.Number
		if json.Unmarshal(c, &n) == nil {
			if v, err := n.Int64(); err == nil && v != int64(len(d.elements)) {
				d.problems.add(nil, "count",
					"the envelope says %d elements but message holds %d; the export may be cut short",
					v, len(d.elements))
			}
		}
	}
	return d, nil
}

// decodeArray decodes an array of elements. where names the text for
// messages: "input" or "message".
func decodeArray(data []byte, where string) (*decoded, error) {
	start := firstNonSpace(data)
	if start == len(data) || data[start] != '[' {
		err := errors.New("not an array")
		return nil, malformed(err, int64(start),
			"malformed JSON: the %s is not an array of elements", where)
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(data, &raws); err != nil {
		return nil, malformedJSON(err, data, where, "elements")
	}

	d := &decoded{elements: make([]*element, len(raws))}
	for i, raw := range raws {
		el := &element{Index: i}
		d.elements[i] = el
		if _, bad := checkText(raw); bad {
			el.broken = true
			identify(raw, el)
			for _, p := range badTextFields(raw) {
				d.problems.add(el, p.field, "%s", p.msg)
			}
			continue
		}
		if err := json.Unmarshal(raw, el); err != nil {
			el.broken = true
			identify(raw, el)
			field := ""
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				field = te.Field
			}
			if len(raw) > 0 && raw[0] != '{' {
				d.problems.add(el, "", "not an object but %s", truncate(string(raw), 20))
			} else {
				d.problems.add(el, field, "cannot be read: %v", err)
			}
			continue
		}
		el.Index = i
		el.tidy()
	}
	return d, nil
}

// identify fills in id, type and name of an element that could not be
// decoded whole, as far as they can be read, for naming it in a problem.
func identify(raw []byte, el *element) {
	var f map[string]json.RawMessage
	if json.Unmarshal(raw, &f) != nil {
		return
	}
	var id scalar
	if json.Unmarshal(f["id"], &id) == nil {
		el.ID = scalar(strings.TrimSpace(string(id)))
	}
	json.Unmarshal(f["type"], &el.Type)
	json.Unmarshal(f["name"], &el.Name)
	el.Type = strings.TrimSpace(el.Type)
	el.Name = strings.TrimSpace(el.Name)
}

type fieldProblem struct{ field, msg string }

// badTextFields names the fields of an element whose text is not valid.
func badTextFields(raw []byte) []fieldProblem {
	var f map[string]json.RawMessage
	if json.Unmarshal(raw, &f) != nil {
		msg, _ := checkText(raw)
		return []fieldProblem{{"", msg}}
	}
	var out []fieldProblem
	for k, v := range f {
		if msg, bad := checkText([]byte(k)); bad {
			out = append(out, fieldProblem{"", "a field name is " + msg})
		} else if msg, bad := checkText(v); bad {
			out = append(out, fieldProblem{k, msg})
		}
	}
	slices.SortFunc(out, func(a, b fieldProblem) int { return strings.Compare(a.field, b.field) })
	if len(out) == 0 {
		msg, _ := checkText(raw)
		out = append(out, fieldProblem{"", msg})
	}
	return out
}

// malformedJSON answers the refusal for a syntax error, with the byte
// offset and the element being read when it happened.
func malformedJSON(err error, data []byte, where, what string) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	var off int64 = -1
	switch {
	case errors.As(err, &se):
		// Offset counts the bytes read, the bad one included.
		off = max(0, se.Offset-1)
	case errors.As(err, &te):
		off = te.Offset
	}
	if off < 0 {
		return malformed(err, -1, "malformed JSON in the %s: %v", where, err)
	}

	text := "the input"
	if where == "message" {
		text = "the envelope's message string (counted in its unescaped text)"
	}
	loc := ""
	if what == "elements" {
		if i := elementAt(data, off); i >= 0 {
			loc = fmt.Sprintf(", in element %d", i)
		}
	}
	from := max(0, int(off)-20)
	near := string(data[from:min(len(data), int(off)+10)])
	return malformed(err, off, "malformed JSON at byte %d (from 0) of %s%s: %v (near %q)",
		off, text, loc, err, strings.ToValidUTF8(near, "\uFFFD"))
}

// elementAt answers the index of the top-level array element that byte
// off of data falls in, or -1.
func elementAt(data []byte, off int64) int {
	depth, index := 0, -1
	inString := false
	for i := 0; i < len(data) && int64(i) < off; i++ {
		c := data[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '[', '{':
			depth++
			if depth == 2 && index < 0 {
				index = 0
			}
		case ']', '}':
			depth--
		case ',':
			if depth == 1 {
				index++
			}
		}
	}
	if index < 0 && depth == 1 {
		return 0
	}
	return index
}

func firstNonSpace(b []byte) int {
	for i, c := range b {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return i
		}
	}
	return len(b)
}

// unquote decodes a JSON string that json.Unmarshal has found well
// formed, keeping bytes that are not UTF-8 as they are. encoding/json
// would replace them with U+FFFD, and then the element that holds them
// could not be found any more. A lone UTF-16 surrogate escape is written
// as its three-byte form, which is not UTF-8 either, for the same reason.
func unquote(q []byte) []byte {
	q = q[1 : len(q)-1]
	out := make([]byte, 0, len(q))
	for len(q) > 0 {
		i := bytes.IndexByte(q, '\\')
		if i < 0 {
			out = append(out, q...)
			break
		}
		out = append(out, q[:i]...)
		q = q[i:]
		c := q[1]
		if c != 'u' {
			out = append(out, unescape(c))
			q = q[2:]
			continue
		}
		r := hex4(q[2:6])
		q = q[6:]
		if utf16.IsSurrogate(r) {
			if r < 0xdc00 && len(q) >= 6 && q[0] == '\\' && q[1] == 'u' {
				if d := utf16.DecodeRune(r, hex4(q[2:6])); d != utf8.RuneError {
					out = utf8.AppendRune(out, d)
					q = q[6:]
					continue
				}
			}
			out = append(out, 0xe0|byte(r>>12), 0x80|byte(r>>6)&0x3f, 0x80|byte(r)&0x3f)
			continue
		}
		out = utf8.AppendRune(out, r)
	}
	return out
}

func unescape(c byte) byte {
	switch c {
	case 'b':
		return '\b'
	case 'f':
		return '\f'
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	}
	return c // '"', '\\', '/'
}

// hex4 reads four hex digits; json.Unmarshal has checked they are.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}

// checkText finds text in a raw JSON value that would not survive
// decoding: bytes that are not UTF-8, and \u escapes of lone UTF-16
// surrogates, both of which encoding/json turns into U+FFFD without a
// word.
func checkText(raw []byte) (string, bool) {
	if !utf8.Valid(raw) {
		for i := 0; i < len(raw); {
			r, n := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && n == 1 {
				return fmt.Sprintf("not valid UTF-8 (byte 0x%02x at offset %d of the value)", raw[i], i), true
			}
			i += n
		}
	}
	for i := 0; i < len(raw); i++ {
		j := bytes.IndexByte(raw[i:], '\\')
		if j < 0 {
			break
		}
		i += j
		if i+5 >= len(raw) || raw[i+1] != 'u' {
			i++
			continue
		}
		r := hex4(raw[i+2 : i+6])
		if !utf16.IsSurrogate(r) {
			i += 5
			continue
		}
		if r < 0xdc00 && i+11 < len(raw) && raw[i+6] == '\\' && raw[i+7] == 'u' {
			if utf16.DecodeRune(r, hex4(raw[i+8:i+12])) != utf8.RuneError {
				i += 11
				continue
			}
		}
		return fmt.Sprintf("not valid Unicode (lone surrogate escape \\u%04x "+
			"at offset %d of the value)", r, i), true
	}
	return "", false
}
