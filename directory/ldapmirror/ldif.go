package ldapmirror

import (
	"bufio"
	"context"
	"encoding/base64"
	"io"

	"github.com/egretair/egret/directory"
)

// ExportLDIF writes the tree egret would have under base, base entry
// included, as LDIF (RFC 2849) that ldapadd loads into an empty server,
// parents before children. Units and groups whose names collide get
// their suffix by age alone, as on a first mirror; the running mirror
// may have kept older RDNs (see the package comment).
func ExportLDIF(ctx context.Context, s *directory.Store, base string, out io.Writer) (int, error) {
	st, err := loadAll(ctx, s)
	if err != nil {
		return 0, err
	}
	be, err := baseEntry(base)
	if err != nil {
		return 0, err
	}
	entries := append([]*Entry{be}, desiredTree(base, st, nil)...)
	w := bufio.NewWriterSize(out, 1<<16)
	for _, e := range entries {
		writeLDIFLine(w, "dn", e.DN)
		for _, k := range sortedKeys(e.Attrs) {
			for _, v := range e.Attrs[k] {
				writeLDIFLine(w, k, v)
			}
		}
		w.WriteByte('\n')
	}
	return len(entries), w.Flush()
}

// writeLDIFLine writes "attr: value", or "attr:: base64" where RFC 2849
// §4 requires it: a value that is not a SAFE-STRING (bytes above 127,
// NUL, CR, LF; a leading space, colon or "<"; a trailing space).
func writeLDIFLine(w *bufio.Writer, attr, v string) {
	w.WriteString(attr)
	if safeString(v) {
		w.WriteString(": ")
		w.WriteString(v)
	} else {
		w.WriteString(":: ")
		w.WriteString(base64.StdEncoding.EncodeToString([]byte(v)))
	}
	w.WriteByte('\n')
}

func safeString(v string) bool {
	if v == "" {
		return true
	}
	if c := v[0]; c == ' ' || c == ':' || c == '<' {
		return false
	}
	if v[len(v)-1] == ' ' {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == 0 || c == '\n' || c == '\r' || c > 127 {
			return false
		}
	}
	return true
}
