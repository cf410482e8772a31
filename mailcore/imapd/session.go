package imapd

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/egretair/egret/mailcore"
	"github.com/egretair/egret/mailcore/store"
)

// session is one IMAP connection.
type session struct {
	srv  *Server
	conn *imapserver.Conn
	// ctx marks the store changes this session makes, so that its own
	// flag changes are not echoed back to it.
	ctx  context.Context
	acct *mailcore.Account
	// sel is the selected mailbox. Commands run one at a time, but an
	// IDLE whose connection drops goes on in go-imap's goroutine while
	// Close runs: selMu guards the field for the two.
	selMu sync.Mutex
	sel   *selected
}

var _ imapserver.SessionIMAP4rev2 = (*session)(nil)
var _ imapserver.SessionAppendLimit = (*session)(nil)

// newSession starts a session for a new connection.
func (s *Server) newSession(c *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	sess := &session{srv: s, conn: c}
	sess.ctx = store.WithOrigin(context.Background(), sess)
	if qc, ok := c.NetConn().(*conn); ok {
		qc.sess.Store(sess)
	}
	return sess, nil, nil
}

// Close ends the session.
func (sess *session) Close() error {
	sess.unselect()
	return nil
}

// Login checks a user name and password with the directory.
func (sess *session) Login(username, password string) error {
	s := sess.srv
	if !plaintextAllowed(sess.conn.NetConn()) {
		return &imap.Error{
			Type: imap.StatusResponseTypeNo,
			Code: imap.ResponseCodePrivacyRequired,
			Text: "Use STARTTLS before sending a password",
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	acct, err := mailcore.Authenticate(ctx, s.cfg.Guard, s.accounts, username, password, sess.remote())
	switch {
	case errors.Is(err, mailcore.ErrBadCredentials):
		s.log.Info("login failed", "user", username, "remote", sess.remote())
		return imapserver.ErrAuthFailed
	case err != nil:
		s.log.Warn("login not checked: directory unavailable",
			"user", username, "err", err)
		return unavailable("Directory unavailable, try again later")
	}

	// The default mailboxes appear before the client lists them.
	if err := s.store.EnsureAccount(ctx, acct.ID); err != nil {
		s.log.Error("mail folder not ready", "account", acct.ID, "err", err)
		return unavailable("Mailbox unavailable, try again later")
	}
	sess.acct = &acct
	s.log.Debug("logged in", "account", acct.ID, "remote", sess.remote())
	return nil
}

// remote answers the peer's address for logs.
func (sess *session) remote() string {
	if nc := sess.conn.NetConn(); nc != nil {
		return nc.RemoteAddr().String()
	}
	return ""
}

// unavailable is a temporary refusal.
func unavailable(text string) error {
	return &imap.Error{
		Type: imap.StatusResponseTypeNo,
		Code: imap.ResponseCodeUnavailable,
		Text: text,
	}
}

// storeError turns a store error into an IMAP reply. trycreate asks for
// the TRYCREATE code on a missing mailbox (RFC 9051 §6.3.12, §6.4.7).
func (sess *session) storeError(err error, trycreate bool) error {
	no := func(code imap.ResponseCode, text string) error {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: code, Text: text}
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNoMailbox) && trycreate:
		return no(imap.ResponseCodeTryCreate, "No such mailbox")
	case errors.Is(err, store.ErrNoMailbox):
		return no(imap.ResponseCodeNonExistent, "No such mailbox")
	case errors.Is(err, store.ErrMailboxExists):
		return no(imap.ResponseCodeAlreadyExists, "Mailbox already exists")
	case errors.Is(err, store.ErrBadName), errors.Is(err, store.ErrNotAllowed):
		return no(imap.ResponseCodeCannot, strings.TrimPrefix(err.Error(), "store: "))
	case errors.Is(err, store.ErrNoMessage):
		return no(imap.ResponseCodeNonExistent, "No such message")
	case errors.Is(err, store.ErrOverQuota), errors.Is(err, store.ErrTooBigForQuota):
		// RFC 9208 §4.3.1: the command would take the quota root
		// over its limit.
		return no(imap.ResponseCodeOverQuota, "Mailbox over quota")
	}
	sess.srv.log.Error("store operation failed", "account", sess.acct.ID, "err", err)
	return unavailable("Temporary failure, try again")
}

// Namespace answers the single personal namespace (RFC 2342).
func (sess *session) Namespace() (*imap.NamespaceData, error) {
	return &imap.NamespaceData{
		Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: store.Delim}},
	}, nil
}

// Create makes a mailbox.
func (sess *session) Create(name string, options *imap.CreateOptions) error {
	name = strings.TrimSuffix(name, string(store.Delim))
	return sess.storeError(sess.srv.store.Create(sess.ctx, sess.acct.ID, name), false)
}

// Delete removes a mailbox.
func (sess *session) Delete(name string) error {
	return sess.storeError(sess.srv.store.Delete(sess.ctx, sess.acct.ID, name), false)
}

// Rename renames a mailbox.
func (sess *session) Rename(oldName, newName string, options *imap.RenameOptions) error {
	err := sess.srv.store.Rename(sess.ctx, sess.acct.ID, oldName, newName)
	return sess.storeError(err, false)
}

// Subscribe adds a mailbox to the subscription list.
func (sess *session) Subscribe(name string) error {
	err := sess.srv.store.Subscribe(sess.ctx, sess.acct.ID, name, true)
	return sess.storeError(err, false)
}

// Unsubscribe removes a name from the subscription list.
func (sess *session) Unsubscribe(name string) error {
	err := sess.srv.store.Subscribe(sess.ctx, sess.acct.ID, name, false)
	return sess.storeError(err, false)
}

// List answers the mailboxes matching the patterns (RFC 9051 §6.3.9,
// RFC 5258, RFC 6154).
func (sess *session) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) error {
	st := sess.srv.store
	if len(patterns) == 1 && patterns[0] == "" {
		// The hierarchy delimiter and root.
		return w.WriteList(&imap.ListData{
			Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect},
			Delim: store.Delim,
		})
	}
	boxes, err := st.Summary(sess.ctx, sess.acct.ID)
	if err != nil {
		return sess.storeError(err, false)
	}
	subs, err := st.Subscriptions(sess.ctx, sess.acct.ID)
	if err != nil {
		return sess.storeError(err, false)
	}
	if options == nil {
		options = &imap.ListOptions{}
	}

	exists := make(map[string]store.MailboxInfo)
	var names []string
	for _, b := range boxes {
		exists[b.Name] = b
		names = append(names, b.Name)
	}
	// A level whose mailbox was deleted while it had children still
	// leads to them: '%' returns it as \NonExistent, or a client
	// that walks the tree level by level never finds the children
	// (RFC 9051 §6.3.9, RFC 5258 §3).
	implied := make(map[string]bool)
	for _, b := range boxes {
		for i := strings.IndexByte(b.Name, store.Delim); i >= 0; {
			parent := b.Name[:i]
			if _, ok := exists[parent]; !ok && !implied[parent] {
				implied[parent] = true
				names = append(names, parent)
			}
			j := strings.IndexByte(b.Name[i+1:], store.Delim)
			if j < 0 {
				break
			}
			i += 1 + j
		}
	}
	if options.SelectSubscribed {
		names = nil
		for _, n := range subs {
			names = append(names, n)
		}
	}

	for _, name := range names {
		match := slices.ContainsFunc(patterns, func(p string) bool {
			if implied[name] && strings.Contains(p, "*") {
				// "*" lists the children themselves.
				return false
			}
			return imapserver.MatchList(name, store.Delim, ref, p)
		})
		if !match {
			continue
		}
		info, ok := exists[name]
		data := &imap.ListData{Delim: store.Delim, Mailbox: name}
		children := hasChildren(name, boxes)
		switch {
		case !ok && children:
			data.Attrs = append(data.Attrs, imap.MailboxAttrNonExistent,
				imap.MailboxAttrHasChildren)
		case !ok:
			data.Attrs = append(data.Attrs, imap.MailboxAttrNonExistent)
		case children:
			data.Attrs = append(data.Attrs, imap.MailboxAttrHasChildren)
		default:
			data.Attrs = append(data.Attrs, imap.MailboxAttrHasNoChildren)
		}
		if info.SpecialUse != "" {
			data.Attrs = append(data.Attrs, imap.MailboxAttr(info.SpecialUse))
		} else if options.SelectSpecialUse {
			continue
		}
		if options.SelectSubscribed || options.ReturnSubscribed {
			if slices.Contains(subs, name) {
				data.Attrs = append(data.Attrs, imap.MailboxAttrSubscribed)
			}
		}
		if options.ReturnStatus != nil && ok {
			data.Status = statusData(info, options.ReturnStatus)
		}
		if err := w.WriteList(data); err != nil {
			return err
		}
	}
	return nil
}

// hasChildren reports whether any mailbox is below name.
func hasChildren(name string, boxes []store.MailboxInfo) bool {
	return slices.ContainsFunc(boxes, func(b store.MailboxInfo) bool {
		return strings.HasPrefix(b.Name, name+string(store.Delim))
	})
}

// Status answers a mailbox's counts.
func (sess *session) Status(name string, options *imap.StatusOptions) (*imap.StatusData, error) {
	info, err := sess.srv.store.Status(sess.ctx, sess.acct.ID, name)
	if err != nil {
		return nil, sess.storeError(err, false)
	}
	return statusData(info, options), nil
}

// statusData fills the items asked for.
func statusData(info store.MailboxInfo, options *imap.StatusOptions) *imap.StatusData {
	num := func(n int) *uint32 { v := uint32(n); return &v }
	data := &imap.StatusData{Mailbox: info.Name}
	if options.NumMessages {
		data.NumMessages = num(info.Total)
	}
	if options.NumRecent {
		data.NumRecent = num(0)
	}
	if options.UIDNext {
		data.UIDNext = imap.UID(info.UIDNext)
	}
	if options.UIDValidity {
		data.UIDValidity = info.UIDValidity
	}
	if options.NumUnseen {
		data.NumUnseen = num(info.Unseen)
	}
	if options.NumDeleted {
		data.NumDeleted = num(info.Deleted)
	}
	if options.Size {
		size := info.Size
		data.Size = &size
	}
	return data
}

// AppendLimit answers the largest message APPEND takes (RFC 7889).
func (sess *session) AppendLimit() uint32 {
	return sess.srv.cfg.AppendLimit
}

// Append stores a message given by the client.
func (sess *session) Append(mailbox string, r imap.LiteralReader, options *imap.AppendOptions) (*imap.AppendData, error) {
	if r.Size() > int64(sess.srv.cfg.AppendLimit) {
		return nil, &imap.Error{
			Type: imap.StatusResponseTypeNo,
			Code: imap.ResponseCodeTooBig,
			Text: "Message too big",
		}
	}
	var flags []string
	var date time.Time
	if options != nil {
		for _, f := range options.Flags {
			flags = append(flags, string(f))
		}
		date = options.Time
	}
	// The quota is the one the directory gave at login: a change made
	// during a session applies from the next login on.
	validity, uid, err := sess.srv.store.AppendWithin(sess.ctx, sess.acct.ID,
		sess.acct.QuotaBytes, mailbox, r, flags, date)
	if err != nil {
		return nil, sess.storeError(err, true)
	}
	return &imap.AppendData{UID: imap.UID(uid), UIDValidity: validity}, nil
}
