package web

import (
	"errors"
	"io"
	"mime"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decodes GB18030, Big5, ...
	"github.com/emersion/go-message/mail"
	"github.com/microcosm-cc/bluemonday"
)

// maxBody bounds the text or HTML read from one part for display.
const maxBody = 4 << 20

// shown is a message as the view page shows it.
type shown struct {
	Subject, From, To, Date string
	Text                    string
	// HTML is the sanitised HTML body, "" when the message has none.
	HTML      string
	HasRemote bool
	Parts     []attachment
}

// attachment is a downloadable part: N is its leaf number in the walk.
type attachment struct {
	N    int
	Name string
	Size int64
}

// The sanitiser policies. Both are allowlists: what is not named is
// dropped, which removes script, style, iframe, object, form, every
// on* handler and every URL whose scheme is not http, https or mailto
// (javascript: and data: links among them). Images are kept only when
// the reader asked for remote content.
var (
	blockRemote = newPolicy(false)
	allowRemote = newPolicy(true)
)

func newPolicy(images bool) *bluemonday.Policy {
	p := bluemonday.NewPolicy()
	p.AllowStandardURLs()
	p.AllowURLSchemes("http", "https", "mailto")
	p.RequireNoReferrerOnLinks(true)
	p.RequireNoFollowOnLinks(true)
	p.AddTargetBlankToFullyQualifiedLinks(true)
	p.AllowElements("p", "br", "div", "span", "b", "i", "u", "s", "strong", "em",
		"blockquote", "pre", "code", "ul", "ol", "li", "dl", "dt", "dd",
		"h1", "h2", "h3", "h4", "h5", "h6", "hr", "small", "big", "sub", "sup",
		"table", "thead", "tbody", "tfoot", "tr", "td", "th", "caption", "center", "font")
	p.AllowAttrs("href", "title").OnElements("a")
	p.AllowAttrs("colspan", "rowspan", "align", "valign", "width").OnElements("td", "th")
	p.AllowAttrs("align").OnElements("p", "div", "table", "tr", "h1", "h2", "h3")
	p.AllowAttrs("color").Matching(regexp.MustCompile(`^#?[0-9A-Za-z]{1,20}$`)).OnElements("font")
	if images {
		p.AllowAttrs("src").Matching(regexp.MustCompile(`^https?://`)).OnElements("img")
		p.AllowAttrs("alt", "width", "height").OnElements("img")
	}
	return p
}

// hasImage finds an img element in raw HTML, to offer remote content.
var hasImage = regexp.MustCompile(`(?i)<img[\s/>]`)

// render reads a message for display. remote lets images through the
// sanitiser. A part that does not parse is skipped, not fatal: hostile
// mail must not make the mailbox unreadable.
func render(r io.Reader, remote bool) (shown, error) {
	e, err := message.Read(r)
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		return shown{}, err
	}
	h := mail.Header{Header: e.Header}
	var out shown
	out.Subject, _ = h.Subject()
	if out.Subject == "" {
		out.Subject = h.Get("Subject")
	}
	out.From = addresses(h, "From")
	out.To = addresses(h, "To")
	// A message without a Date field shows none, not year 1.
	if d, err := h.Date(); err == nil && !d.IsZero() {
		out.Date = d.Format(time.RFC1123Z)
	}

	var html, text string
	leaf := 0
	walkErr := e.Walk(func(_ []int, part *message.Entity, err error) error {
		if err != nil || part == nil || part.MultipartReader() != nil {
			return nil
		}
		leaf++
		ct, _, _ := part.Header.ContentType()
		disp, dparams, _ := part.Header.ContentDisposition()
		name := dparams["filename"]
		if name == "" {
			_, cparams, _ := part.Header.ContentType()
			name = cparams["name"]
		}
		body := io.LimitReader(part.Body, maxBody)
		switch {
		case disp != "attachment" && name == "" && ct == "text/html" && html == "":
			b, _ := io.ReadAll(body)
			html = string(b)
		case disp != "attachment" && name == "" && ct == "text/plain" && text == "":
			b, _ := io.ReadAll(body)
			text = string(b)
		default:
			n, _ := io.Copy(io.Discard, part.Body)
			if name == "" {
				name = "part-" + strconv.Itoa(leaf)
			}
			out.Parts = append(out.Parts, attachment{N: leaf, Name: name, Size: n})
		}
		return nil
	})
	if walkErr != nil && !errors.Is(walkErr, io.EOF) {
		out.Text = "(part of this message could not be read)"
	}
	if html != "" {
		out.HasRemote = hasImage.MatchString(html)
		pol := blockRemote
		if remote {
			pol = allowRemote
		}
		out.HTML = pol.Sanitize(html)
	}
	out.Text = text
	return out, nil
}

// addresses answers an address field decoded, or raw if it does not
// parse.
func addresses(h mail.Header, key string) string {
	list, err := h.AddressList(key)
	if err != nil || len(list) == 0 {
		return h.Get(key)
	}
	parts := make([]string, len(list))
	for i, a := range list {
		if a.Name != "" {
			parts[i] = a.Name + " <" + a.Address + ">"
		} else {
			parts[i] = a.Address
		}
	}
	return strings.Join(parts, ", ")
}

// openPart finds leaf part n (as render numbers them) and answers its
// file name and body.
func openPart(r io.Reader, n int) (string, io.Reader, error) {
	e, err := message.Read(r)
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		return "", nil, err
	}
	errFound := errors.New("found")
	var name string
	var body io.Reader
	leaf := 0
	err = e.Walk(func(_ []int, part *message.Entity, err error) error {
		if err != nil || part == nil || part.MultipartReader() != nil {
			return nil
		}
		leaf++
		if leaf != n {
			return nil
		}
		_, dparams, _ := part.Header.ContentDisposition()
		_, cparams, _ := part.Header.ContentType()
		name = dparams["filename"]
		if name == "" {
			name = cparams["name"]
		}
		if name == "" {
			name = "part-" + strconv.Itoa(n)
		}
		body = part.Body
		return errFound
	})
	if body == nil {
		return "", nil, errors.New("web: no such part")
	}
	_ = err
	return name, body, nil
}

// contentDisposition answers an attachment disposition with the file
// name in RFC 6266 form: an ASCII fallback in filename and, when the
// name is not plain ASCII, the exact name in filename* (RFC 8187).
func contentDisposition(name string) string {
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '/' || r == '\\' {
			return '_'
		}
		return r
	}, name)
	ascii := strings.Map(func(r rune) rune {
		if r > 0x7e || r == '"' {
			return '_'
		}
		return r
	}, name)
	v := mime.FormatMediaType("attachment", map[string]string{"filename": ascii})
	if ascii != name {
		v += "; filename*=UTF-8''" + encodeRFC8187(name)
	}
	return v
}

// encodeRFC8187 percent-encodes all but attr-char (RFC 8187 §3.2.1).
func encodeRFC8187(s string) string {
	const attr = "!#$&+-.^_`|~"
	var b strings.Builder
	for _, c := range []byte(s) {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(attr, c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteString("%" + strings.ToUpper(hex2(c)))
	}
	return b.String()
}

func hex2(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&15]})
}
