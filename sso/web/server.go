package web

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/egretair/egret/mailcore"
	"github.com/egretair/egret/mailcore/mailview"
	"github.com/egretair/egret/mailcore/store"
	"github.com/egretair/egret/sso"
)

//go:embed templates/*.html
var templateFiles embed.FS

var pages = template.Must(template.ParseFS(templateFiles, "templates/*.html"))

// pageSize is how many messages a list page shows.
const pageSize = 25

// Server serves the web mailbox. SSO, Mail and Accounts must be set.
type Server struct {
	SSO      *sso.Service
	Mail     *store.Store
	View     *mailview.Reader
	Accounts mailcore.Accounts
	// Guard slows and locks password guessing at /mail/login.
	Guard mailcore.LoginGuard
	// Secure sends cookies only over HTTPS. Leave it off only for a
	// listener browsers reach on loopback.
	Secure bool
	Log    *slog.Logger
}

// Handler answers the handler for everything under /mail/.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /mail/login", s.loginForm)
	mux.HandleFunc("POST /mail/login", s.login)
	mux.HandleFunc("GET /mail/sso", s.tokenPage)
	mux.HandleFunc("POST /mail/sso", s.redeemToken)
	mux.HandleFunc("GET /mail/preauth", s.preauthPage)
	mux.HandleFunc("POST /mail/preauth", s.redeemPreauth)
	mux.HandleFunc("GET /mail/{$}", s.signedIn(s.list))
	mux.HandleFunc("GET /mail/read", s.signedIn(s.read))
	mux.HandleFunc("GET /mail/part", s.signedIn(s.part))
	mux.HandleFunc("POST /mail/flag", s.signedIn(s.flag))
	mux.HandleFunc("POST /mail/logout", s.signedIn(s.logout))
	mux.HandleFunc("/mail/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, http.StatusNotFound, "Not found", "There is no such page.")
	})
	return mux
}

func (s *Server) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// page is what the templates see.
type page struct {
	Title, Account, CSRF, Nonce, Error string
	// Sign-in forms.
	Pre, User, Action string
	Fields            []field
	// Lists.
	Folders             []mailview.Folder
	Box                 string
	Page                mailview.Page
	PageN, PrevN, NextN int
	Prev, Next          bool
	// One message.
	Msg    shown
	UID    uint32
	Remote bool
}

type field struct{ Name, Value string }

// basePolicy is the Content-Security-Policy of every page: no script,
// no plugin, no remote anything; forms post only here; no framing.
const basePolicy = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// headers sets what every answer carries.
func headers(w http.ResponseWriter, csp string) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	// Login links carry secrets in the URL: no Referer may leak them.
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

func (s *Server) render(w http.ResponseWriter, status int, name, csp string, p page) {
	headers(w, csp)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := pages.ExecuteTemplate(w, name, p); err != nil {
		s.log().Error("web page not rendered", slog.String("page", name), slog.Any("err", err))
	}
}

func (s *Server) fail(w http.ResponseWriter, status int, title, msg string) {
	s.render(w, status, "error", basePolicy, page{Title: title, Error: msg})
}

func randomToken() string {
	b := make([]byte, 24)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Cookie names; the __Host- prefix (RFC 6265bis §4.1.3.2) pins a
// Secure cookie to this host and path /.
func (s *Server) sessionCookie() string {
	if s.Secure {
		return "__Host-egret_session"
	}
	return "egret_session"
}

// SessionCookie names the cookie that carries a signed-in session, for
// a front that relays the mailbox pages to the node holding the mail.
func (s *Server) SessionCookie() string { return s.sessionCookie() }

// Unavailable answers the page for a mailbox that cannot be read just
// now, with status 503 and a hint to try again after retryAfter
// seconds.
func (s *Server) Unavailable(w http.ResponseWriter, retryAfter int) {
	w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	s.fail(w, http.StatusServiceUnavailable, "Try again", "The mailbox is not available just now.")
}

func (s *Server) preCookie() string {
	if s.Secure {
		return "__Host-egret_pre"
	}
	return "egret_pre"
}

func (s *Server) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: s.Secure, SameSite: http.SameSiteLaxMode})
}

// preToken sets the pre-session cookie a sign-in form is matched with.
func (s *Server) preToken(w http.ResponseWriter) string {
	v := randomToken()
	s.setCookie(w, s.preCookie(), v, 600)
	return v
}

// prePassed checks a sign-in POST: its form's pre token matches the
// cookie, which a SameSite=Lax cookie makes impossible from another
// site's form.
func (s *Server) prePassed(r *http.Request) bool {
	c, err := r.Cookie(s.preCookie())
	if err != nil || c.Value == "" {
		return false
	}
	return hmac.Equal([]byte(c.Value), []byte(r.PostFormValue("pre")))
}

// begin starts a session after a sign-in and sends the browser to to.
func (s *Server) begin(w http.ResponseWriter, r *http.Request, accountID, to string) {
	if c, err := r.Cookie(s.sessionCookie()); err == nil {
		s.SSO.EndSession(r.Context(), c.Value)
	}
	sess, err := s.SSO.StartSession(r.Context(), accountID)
	if err != nil {
		s.log().Error("web session not started", slog.String("account", accountID), slog.Any("err", err))
		s.fail(w, http.StatusServiceUnavailable, "Try again", "The mailbox is not available just now.")
		return
	}
	s.setCookie(w, s.preCookie(), "", -1)
	s.setCookie(w, s.sessionCookie(), sess.ID, int(time.Until(sess.ExpiresAt).Seconds()))
	headers(w, basePolicy)
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// session is the signed-in request's session and account.
type session struct {
	sso.Session
	Address string
}

type sessionKey struct{}

// signedIn runs h for a request with a live session, and checks the
// CSRF token of every POST. Without a session a GET goes to the login
// page and anything else is refused.
func (s *Server) signedIn(h func(http.ResponseWriter, *http.Request, session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var sess sso.Session
		err := sso.ErrNoSession
		if c, cerr := r.Cookie(s.sessionCookie()); cerr == nil {
			sess, err = s.SSO.Session(r.Context(), c.Value)
		}
		if errors.Is(err, sso.ErrNoSession) {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				headers(w, basePolicy)
				http.Redirect(w, r, "/mail/login", http.StatusSeeOther)
				return
			}
			s.fail(w, http.StatusForbidden, "Signed out", "Your session has ended; sign in again.")
			return
		}
		if err != nil {
			s.log().Error("web session not checked", slog.Any("err", err))
			s.fail(w, http.StatusServiceUnavailable, "Try again", "The mailbox is not available just now.")
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
			if !sess.CheckCSRF(r.PostFormValue("csrf")) {
				s.log().Warn("web form refused", slog.String("account", sess.AccountID),
					slog.String("cause", "CSRF token missing or wrong"))
				s.fail(w, http.StatusForbidden, "Refused", "This form has expired; reload the page and try again.")
				return
			}
		}
		acct, err := s.SSO.Account(r.Context(), sess.AccountID)
		if err != nil {
			s.fail(w, http.StatusForbidden, "Signed out", "Your session has ended; sign in again.")
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, sess)),
			session{Session: sess, Address: acct.Address})
	}
}

func (p *page) signed(sess session, title string) {
	p.Title, p.Account, p.CSRF = title, sess.Address, sess.CSRF()
}

func (s *Server) loginForm(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusOK, "login", basePolicy, page{Title: "Sign in", Pre: s.preToken(w)})
}

// badLogin is the one answer to every failed password sign-in.
const badLogin = "Wrong login or password."

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	user, pass := r.PostFormValue("user"), r.PostFormValue("password")
	if !s.prePassed(r) {
		s.render(w, http.StatusForbidden, "login", basePolicy,
			page{Title: "Sign in", Pre: s.preToken(w), User: user, Error: "This form has expired; try again."})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	acct, err := mailcore.Authenticate(ctx, s.Guard, s.Accounts, user, pass, r.RemoteAddr)
	if errors.Is(err, mailcore.ErrBadCredentials) {
		s.log().Info("web login failed", slog.String("user", user), slog.String("remote", r.RemoteAddr))
		s.render(w, http.StatusUnauthorized, "login", basePolicy,
			page{Title: "Sign in", Pre: s.preToken(w), User: user, Error: badLogin})
		return
	}
	if err != nil {
		s.log().Warn("web login not checked", slog.String("user", user), slog.Any("err", err))
		s.fail(w, http.StatusServiceUnavailable, "Try again", "Sign-in is not available just now.")
		return
	}
	s.begin(w, r, acct.ID, sso.MailRoot)
}

// handoff renders the page a login link's GET answers: a form that
// POSTs the link's values back, sent by a script allowed by nonce.
func (s *Server) handoff(w http.ResponseWriter, action string, fields []field) {
	nonce := randomToken()
	csp := basePolicy + "; script-src 'nonce-" + nonce + "'"
	s.render(w, http.StatusOK, "redeem", csp, page{Title: "Opening your mailbox",
		Nonce: nonce, Pre: s.preToken(w), Action: action, Fields: fields})
}

func (s *Server) tokenPage(w http.ResponseWriter, r *http.Request) {
	s.handoff(w, "/mail/sso", []field{{"t", r.URL.Query().Get("t")}})
}

func (s *Server) preauthPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.handoff(w, "/mail/preauth", []field{{"account", q.Get("account")},
		{"ts", q.Get("ts")}, {"exp", q.Get("exp")}, {"mac", q.Get("mac")}})
}

func (s *Server) linkRefused(w http.ResponseWriter, err error) {
	if errors.Is(err, sso.ErrInvalidLink) {
		s.render(w, http.StatusForbidden, "redeem", basePolicy, page{Title: "Link not valid",
			Error: "This sign-in link is not valid: it was used already, has expired or was changed. Open the mailbox from the portal again."})
		return
	}
	s.log().Error("login link not checked", slog.Any("err", err))
	s.fail(w, http.StatusServiceUnavailable, "Try again", "Sign-in is not available just now.")
}

func (s *Server) redeemToken(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if !s.prePassed(r) {
		s.linkRefused(w, sso.ErrInvalidLink)
		return
	}
	g, err := s.SSO.RedeemToken(r.Context(), r.PostFormValue("t"))
	if err != nil {
		s.linkRefused(w, err)
		return
	}
	s.begin(w, r, g.AccountID, g.ReturnPath)
}

func (s *Server) redeemPreauth(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if !s.prePassed(r) {
		s.linkRefused(w, sso.ErrInvalidLink)
		return
	}
	g, err := s.SSO.RedeemPreauth(r.Context(), r.PostFormValue("account"),
		r.PostFormValue("ts"), r.PostFormValue("exp"), r.PostFormValue("mac"))
	if err != nil {
		s.linkRefused(w, err)
		return
	}
	s.begin(w, r, g.AccountID, g.ReturnPath)
}

// mailboxName answers the box parameter checked, INBOX by default.
func mailboxName(v string) (string, bool) {
	if v == "" {
		return store.Inbox, true
	}
	n, err := store.CleanName(v)
	return n, err == nil
}

func (s *Server) storeFailed(w http.ResponseWriter, accountID string, err error) {
	if errors.Is(err, store.ErrNoMailbox) || errors.Is(err, store.ErrNoMessage) || errors.Is(err, store.ErrBadName) {
		s.fail(w, http.StatusNotFound, "Not found", "There is no such folder or message.")
		return
	}
	s.log().Error("web mailbox not read", slog.String("account", accountID), slog.Any("err", err))
	s.fail(w, http.StatusServiceUnavailable, "Try again", "The mailbox is not available just now.")
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, sess session) {
	q := r.URL.Query()
	box, ok := mailboxName(q.Get("box"))
	if !ok {
		s.fail(w, http.StatusNotFound, "Not found", "There is no such folder.")
		return
	}
	n, _ := strconv.Atoi(q.Get("page"))
	n = max(n, 1)
	folders, err := s.View.Folders(r.Context(), sess.AccountID)
	if err != nil {
		s.storeFailed(w, sess.AccountID, err)
		return
	}
	pg, err := s.View.Page(r.Context(), sess.AccountID, box, n-1, pageSize)
	if err != nil {
		s.storeFailed(w, sess.AccountID, err)
		return
	}
	p := page{Folders: folders, Box: pg.Mailbox, Page: pg, PageN: n,
		Prev: n > 1, PrevN: n - 1, Next: n < pg.Pages, NextN: n + 1}
	p.signed(sess, box)
	s.render(w, http.StatusOK, "list", basePolicy, p)
}

func (s *Server) message(r *http.Request) (string, uint32, bool) {
	q := r.URL.Query()
	if r.Method == http.MethodPost {
		q = r.PostForm
	}
	box, ok := mailboxName(q.Get("box"))
	uid, err := strconv.ParseUint(q.Get("uid"), 10, 32)
	return box, uint32(uid), ok && err == nil && uid > 0
}

func (s *Server) read(w http.ResponseWriter, r *http.Request, sess session) {
	box, uid, ok := s.message(r)
	if !ok {
		s.fail(w, http.StatusNotFound, "Not found", "There is no such message.")
		return
	}
	remote := r.URL.Query().Get("remote") == "1"
	f, _, err := s.Mail.OpenMessage(r.Context(), sess.AccountID, box, uid)
	if err != nil {
		s.storeFailed(w, sess.AccountID, err)
		return
	}
	defer f.Close()
	msg, err := render(f, remote)
	if err != nil {
		msg = shown{Text: "(this message could not be read)"}
	}
	// Opening a message reads it, as in any mail client.
	if _, err := s.Mail.StoreFlags(r.Context(), sess.AccountID, box, []uint32{uid},
		store.FlagsAdd, []string{store.FlagSeen}); err != nil {
		s.log().Warn("message not marked read", slog.String("account", sess.AccountID), slog.Any("err", err))
	}
	csp := basePolicy
	if remote {
		csp = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https: http:; " +
			"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
	}
	p := page{Box: box, UID: uid, Msg: msg, Remote: remote}
	p.signed(sess, msg.Subject)
	s.render(w, http.StatusOK, "read", csp, p)
}

func (s *Server) part(w http.ResponseWriter, r *http.Request, sess session) {
	box, uid, ok := s.message(r)
	n, err := strconv.Atoi(r.URL.Query().Get("n"))
	if !ok || err != nil || n < 1 {
		s.fail(w, http.StatusNotFound, "Not found", "There is no such attachment.")
		return
	}
	f, _, err := s.Mail.OpenMessage(r.Context(), sess.AccountID, box, uid)
	if err != nil {
		s.storeFailed(w, sess.AccountID, err)
		return
	}
	defer f.Close()
	name, body, err := openPart(f, n)
	if err != nil {
		s.fail(w, http.StatusNotFound, "Not found", "There is no such attachment.")
		return
	}
	headers(w, "default-src 'none'; sandbox")
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", contentDisposition(name))
	io.Copy(w, body)
}

func (s *Server) flag(w http.ResponseWriter, r *http.Request, sess session) {
	box, uid, ok := s.message(r)
	if !ok {
		s.fail(w, http.StatusNotFound, "Not found", "There is no such message.")
		return
	}
	op := store.FlagsRemove
	if r.PostFormValue("seen") == "1" {
		op = store.FlagsAdd
	}
	if _, err := s.Mail.StoreFlags(r.Context(), sess.AccountID, box, []uint32{uid}, op,
		[]string{store.FlagSeen}); err != nil {
		s.storeFailed(w, sess.AccountID, err)
		return
	}
	// Back to the list page the form was on.
	to := "/mail/?box=" + url.QueryEscape(box)
	if n, err := strconv.Atoi(r.PostFormValue("page")); err == nil && n > 1 {
		to += "&page=" + strconv.Itoa(n)
	}
	headers(w, basePolicy)
	http.Redirect(w, r, to, http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, sess session) {
	if err := s.SSO.EndSession(r.Context(), sess.ID); err != nil {
		s.log().Warn("web session not ended", slog.String("account", sess.AccountID), slog.Any("err", err))
	}
	s.setCookie(w, s.sessionCookie(), "", -1)
	headers(w, basePolicy)
	http.Redirect(w, r, "/mail/login", http.StatusSeeOther)
}
