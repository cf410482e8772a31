package smtpd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-smtp"

	"github.com/egretair/egret/mailcore"
)

// maxLoopScan bounds how much of a message's header is read to look for
// X-Loop fields; a header longer than this is passed on unread beyond it.
const maxLoopScan = 256 << 10

// errListLoop refuses a message that has been through a list already,
// or that a list sends to itself (RFC 3463 §3.5, X.4.6 routing loop).
var errListLoop = &smtp.SMTPError{
	Code:         550,
	EnhancedCode: smtp.EnhancedCode{5, 4, 6},
	Message:      "Mail loop: the message has been through this list already",
}

// errEmptyList refuses a list that reaches no enabled account.
var errEmptyList = &smtp.SMTPError{
	Code:         550,
	EnhancedCode: smtp.EnhancedCode{5, 1, 1},
	Message:      "The list has no members with a mailbox",
}

// rcptList expands to when it is a list. done is false when to is no
// list (or the directory has no lists); otherwise err is the reply.
func (sess *session) rcptList(ctx context.Context, to string) (done bool, err error) {
	s := sess.srv
	lists, ok := s.accounts.(mailcore.Lists)
	if !ok {
		return false, nil
	}
	members, isList, err := lists.ExpandList(ctx, to, sess.from)
	var refusal *mailcore.PostRefusal
	switch {
	case errors.As(err, &refusal):
		s.log.Info("list post refused", "rcpt", to, "from", sess.from,
			"policy", refusal.Policy, "remote", sess.remote())
		return true, &smtp.SMTPError{
			Code:         550,
			EnhancedCode: smtp.EnhancedCode{5, 7, 1},
			Message:      "Not allowed to post: " + refusal.Error(),
		}
	case err != nil:
		s.log.Warn("list expansion failed", "rcpt", to, "err", err)
		return true, errTempLookup
	case !isList:
		return false, nil
	}

	addr := strings.ToLower(to)
	if strings.EqualFold(sess.from, addr) {
		return true, errListLoop
	}
	if len(members) == 0 {
		return true, errEmptyList
	}
	for _, m := range members {
		sess.add(m)
	}
	sess.lists = append(sess.lists, addr)
	return true, nil
}

// loopCheck reads the header of a message for lists and answers a reader
// of the whole message with an X-Loop field (RFC 2369 leaves loop
// detection to the list; X-Loop is the field list servers use) in front
// for each list expanded. A message that carries X-Loop for one of the
// lists already is refused: it went out through the list and came back.
func (sess *session) loopCheck(r io.Reader) (io.Reader, error) {
	if len(sess.lists) == 0 {
		return r, nil
	}
	br := bufio.NewReaderSize(r, 32<<10)
	var head bytes.Buffer
	for head.Len() < maxLoopScan {
		line, err := br.ReadSlice('\n')
		head.Write(line)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil || len(bytes.TrimRight(line, "\r\n")) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || !strings.EqualFold(string(name), "X-Loop") {
			continue
		}
		v := strings.ToLower(strings.Trim(
			strings.TrimSpace(string(value)), "<>"))
		for _, l := range sess.lists {
			if v == l {
				return nil, errListLoop
			}
		}
	}
	var add strings.Builder
	for _, l := range sess.lists {
		fmt.Fprintf(&add, "X-Loop: %s\r\n", l)
	}
	return io.MultiReader(strings.NewReader(add.String()), &head, br), nil
}
