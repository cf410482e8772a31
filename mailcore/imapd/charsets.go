package imapd

import (
	"github.com/emersion/go-message/charset"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/traditionalchinese"
)

// Charset names that mailers in use here write but the IANA and WHATWG
// registries do not know: Python's email package labels Big5 text
// "big5_tw", and Windows tools write code page numbers. Without these,
// SEARCH and ENVELOPE would leave such subjects undecoded.
func init() {
	for _, name := range []string{"big5_tw", "big5-tw", "cp950", "ms950"} {
		charset.RegisterEncoding(name, traditionalchinese.Big5)
	}
	for _, name := range []string{"cp936", "ms936"} {
		charset.RegisterEncoding(name, simplifiedchinese.GBK)
	}
}
