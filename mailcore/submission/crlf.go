package submission

import (
	"bufio"
	"io"
)

// crlfReader passes a message body through with every bare LF made CRLF
// (RFC 5322 §2.3 allows CR and LF only together).
type crlfReader struct {
	r *bufio.Reader
	// cr is set when the last byte passed was CR.
	cr bool
	// lf is set when an LF is owed after an inserted CR.
	lf bool
}

// newCRLFReader reads from r.
func newCRLFReader(r *bufio.Reader) *crlfReader {
	return &crlfReader{r: r}
}

// Read fills p, one byte at a time from the buffered reader.
func (c *crlfReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if c.lf {
			p[n], c.lf, c.cr = '\n', false, false
			n++
			continue
		}
		b, err := c.r.ReadByte()
		if err != nil {
			if n > 0 && err == io.EOF {
				return n, nil
			}
			return n, err
		}
		if b == '\n' && !c.cr {
			p[n], c.lf = '\r', true
			n++
			continue
		}
		p[n], c.cr = b, b == '\r'
		n++
	}
	return n, nil
}
