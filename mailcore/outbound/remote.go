package outbound

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/egretair/egret/mailcore/dkim"
	"github.com/egretair/egret/mailcore/queue"
)

// DefaultPort is the port of MX hosts (RFC 5321 §4.5.4.2 leaves it to
// the MX record's users; every MTA uses 25).
const DefaultPort = 25

// Config configures remote delivery.
type Config struct {
	// Hostname is the name given in EHLO.
	Hostname string
	// Resolver is a DNS server's HOST:PORT; empty means the system's.
	Resolver string
	// Port is the port MX hosts are reached on; zero means 25.
	Port int
	// VerifyTLS refuses a STARTTLS certificate that does not verify
	// for the MX host's name.
	VerifyTLS bool
	// Keys sign mail from the domains they hold; nil signs nothing.
	Keys *dkim.Keys
	// DialTimeout bounds one connection attempt; zero means 30s.
	DialTimeout time.Duration
}

// Remote delivers to other domains' MX hosts. It is a queue.Transport.
type Remote struct {
	cfg Config
	res *net.Resolver
	log *slog.Logger
}

// NewRemote makes a Remote.
func NewRemote(cfg Config, log *slog.Logger) *Remote {
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "localhost"
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 30 * time.Second
	}
	if log == nil {
		log = slog.Default()
	}
	return &Remote{cfg: cfg, res: newResolver(cfg.Resolver), log: log.With("service", "outbound")}
}

// via names the configured DNS server for an error: Go's resolver
// names the system's in its message even when it dialled another.
func (r *Remote) via() string {
	if r.cfg.Resolver == "" {
		return ""
	}
	return " via " + r.cfg.Resolver
}

// newResolver answers a resolver that asks server, or the system's
// resolver when server is empty.
func newResolver(server string) *net.Resolver {
	if server == "" {
		return net.DefaultResolver
	}
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, server)
		},
	}
}

// Deliver sends the message to every recipient's MX hosts, domain by
// domain, and answers one error per recipient; see queue.Transport and
// the package comment.
func (r *Remote) Deliver(ctx context.Context, d queue.Delivery, body io.Reader) []error {
	out := make([]error, len(d.Recipients))

	// The whole message is read, and so checked, before any host is
	// talked to; signing needs it whole too.
	msg, err := io.ReadAll(body)
	if err != nil {
		for i := range out {
			out[i] = fmt.Errorf("outbound: message not read whole: %w", err)
		}
		return out
	}
	sig, err := r.sign(msg)
	if err != nil {
		r.log.Error("message not signed", "queue_id", d.ID, "err", err)
		for i := range out {
			out[i] = err
		}
		return out
	}
	if sig != "" {
		msg = append([]byte(sig), msg...)
	}

	var order []string
	byDomain := map[string][]int{}
	for i, to := range d.Recipients {
		dom := domainOf(to)
		if _, ok := byDomain[dom]; !ok {
			order = append(order, dom)
		}
		byDomain[dom] = append(byDomain[dom], i)
	}
	for _, dom := range order {
		r.deliverDomain(ctx, d, dom, byDomain[dom], msg, out)
	}
	return out
}

// sign answers the DKIM-Signature for msg by its From domain's key, or
// "" when that domain has none.
func (r *Remote) sign(msg []byte) (string, error) {
	if r.cfg.Keys == nil {
		return "", nil
	}
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		return "", nil
	}
	from, err := mail.ParseAddress(m.Header.Get("From"))
	if err != nil {
		return "", nil
	}
	return r.cfg.Keys.Sign(domainOf(from.Address), msg)
}

// deliverDomain tries the MX hosts of one domain in order and fills out
// for the recipients idx.
func (r *Remote) deliverDomain(ctx context.Context, d queue.Delivery, domain string, idx []int, msg []byte, out []error) {
	setAll := func(err error) {
		for _, i := range idx {
			out[i] = err
		}
	}
	hosts, err := r.mxHosts(ctx, domain)
	if err != nil {
		setAll(err)
		return
	}
	var last error
	for _, host := range hosts {
		res, err := r.deliverHost(ctx, d, host, idx, msg)
		if err != nil {
			r.log.Info("mx host not usable", "queue_id", d.ID,
				"domain", domain, "host", host, "err", err)
			last = err
			continue
		}
		for k, i := range idx {
			out[i] = res[k]
		}
		return
	}
	setAll(fmt.Errorf("outbound: no MX host of %s took the message: %w", domain, last))
}

// mxHosts answers the hosts to try for domain, best first.
func (r *Remote) mxHosts(ctx context.Context, domain string) ([]string, error) {
	if domain == "" {
		return nil, queue.Permanent(errors.New("outbound: 5.1.3 recipient has no domain"))
	}
	mxs, err := r.res.LookupMX(ctx, domain)
	if err == nil && len(mxs) > 0 {
		// RFC 7505 §3: a single MX of "." says the domain takes no
		// mail at all.
		if len(mxs) == 1 && (mxs[0].Host == "." || mxs[0].Host == "") {
			return nil, queue.Permanent(fmt.Errorf(
				"outbound: 556 5.1.10 %s accepts no mail (null MX)", domain))
		}
		// net.Resolver sorts by preference, shuffling equal ones
		// (RFC 5321 §5.1).
		var hosts []string
		for _, mx := range mxs {
			hosts = append(hosts, strings.TrimSuffix(mx.Host, "."))
		}
		return hosts, nil
	}
	if err != nil && !isNotFound(err) {
		return nil, fmt.Errorf("outbound: MX lookup of %s%s: %w", domain, r.via(), err)
	}

	// RFC 5321 §5.1: without MX records the domain itself is the one
	// host, when it has an address.
	_, err = r.res.LookupIPAddr(ctx, domain)
	if isNotFound(err) {
		return nil, queue.Permanent(fmt.Errorf(
			"outbound: 550 5.1.2 %s has no MX and no address", domain))
	}
	if err != nil {
		return nil, fmt.Errorf("outbound: address lookup of %s: %w", domain, err)
	}
	return []string{domain}, nil
}

// isNotFound reports whether a lookup error says the name or record does
// not exist, as opposed to a server that did not answer.
func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// deliverHost runs one transaction with host. A non-nil error means the
// host could not be talked to and the next one should be tried;
// otherwise the answer holds one result per recipient of idx.
func (r *Remote) deliverHost(ctx context.Context, d queue.Delivery, host string, idx []int, msg []byte) ([]error, error) {
	c, err := r.connect(ctx, host)
	if err != nil {
		return nil, err
	}
	defer c.Close()

	out := make([]error, len(idx))
	opts := &smtp.MailOptions{UTF8: d.UTF8, Size: int64(len(msg))}
	if err := c.Mail(d.From, opts); err != nil {
		if isClosing(err) {
			return nil, err
		}
		for k := range out {
			out[k] = replyErr(host, err)
		}
		return out, nil
	}

	accepted := 0
	for k, i := range idx {
		if err := c.Rcpt(d.Recipients[i], nil); err != nil {
			out[k] = replyErr(host, err)
			continue
		}
		accepted++
	}
	if accepted == 0 {
		c.Quit()
		return out, nil
	}

	w, err := c.Data()
	if err == nil {
		_, err = w.Write(msg)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
	}
	for k := range out {
		if out[k] == nil && err != nil {
			out[k] = replyErr(host, err)
		}
	}
	if err == nil {
		r.log.Info("message sent", "queue_id", d.ID, "host", host, "recipients", accepted)
	}
	c.Quit()
	return out, nil
}

// connect dials host, says EHLO and starts TLS when it is offered.
func (r *Remote) connect(ctx context.Context, host string) (*smtp.Client, error) {
	addr := net.JoinHostPort(host, strconv.Itoa(r.cfg.Port))
	dial := func() (net.Conn, error) {
		dctx, cancel := context.WithTimeout(ctx, r.cfg.DialTimeout)
		defer cancel()
		dl := net.Dialer{Resolver: r.res}
		conn, err := dl.DialContext(dctx, "tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("outbound: %w", err)
		}
		if t, ok := ctx.Deadline(); ok {
			conn.SetDeadline(t)
		}
		return conn, nil
	}

	conn, err := dial()
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{
		ServerName:         host,
		InsecureSkipVerify: !r.cfg.VerifyTLS,
		MinVersion:         tls.VersionTLS12,
	}
	// go-smtp starts TLS only in a client of its own making, whose
	// first EHLO says "localhost"; the EHLO after TLS, which the
	// host goes by, carries the real name.
	c, err := smtp.NewClientStartTLS(conn, tc)
	if err != nil && strings.Contains(err.Error(), "doesn't support STARTTLS") {
		// RFC 3207 §4: without STARTTLS the session stays in
		// plain text; a second connection starts it over.
		if conn, err = dial(); err != nil {
			return nil, err
		}
		c = smtp.NewClient(conn)
	} else if err != nil {
		return nil, fmt.Errorf("outbound: %s: %w", host, err)
	}
	if err := c.Hello(r.cfg.Hostname); err != nil {
		c.Close()
		return nil, fmt.Errorf("outbound: %s: %w", host, err)
	}
	return c, nil
}

// isClosing reports a 421 reply: the host is going away, and the next
// one is worth a try (RFC 5321 §3.8).
func isClosing(err error) bool {
	var se *smtp.SMTPError
	return errors.As(err, &se) && se.Code == 421
}

// replyErr turns a host's reply into the recipient's result: permanent
// for 5xx, temporary otherwise. The text holds the code and enhanced
// code as the host gave them, for the sender's notice.
func replyErr(host string, err error) error {
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		return fmt.Errorf("outbound: %s: %w", host, err)
	}
	text := strconv.Itoa(se.Code)
	if ec := se.EnhancedCode; ec != smtp.NoEnhancedCode && ec != (smtp.EnhancedCode{}) {
		text += fmt.Sprintf(" %d.%d.%d", ec[0], ec[1], ec[2])
	}
	e := fmt.Errorf("outbound: %s said: %s %s", host, text, se.Message)
	if se.Code >= 500 {
		return queue.Permanent(e)
	}
	return e
}
