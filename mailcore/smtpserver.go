package mailcore

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/emersion/go-smtp"
)

// SMTPLimits are what the SMTP and submission servers set alike on
// go-smtp's server.
type SMTPLimits struct {
	Hostname        string
	MaxMessageBytes int64
	MaxRecipients   int
	TLS             *tls.Config
}

// MaxLineLength is far above the 1000 octets of RFC 5321 §4.5.3.1.6:
// real senders exceed it, and their messages must still be taken and
// kept unchanged.
const MaxLineLength = 1 << 20

// NewSMTPServer makes a go-smtp server for be with the limits, SMTPUTF8
// on, the minutes-long timeouts RFC 5321 §4.5.3.2 asks for, and the
// library's connection reports logged for service.
func NewSMTPServer(be smtp.Backend, l SMTPLimits, log *slog.Logger, service string) *smtp.Server {
	srv := smtp.NewServer(be)
	srv.Domain = l.Hostname
	srv.MaxMessageBytes = l.MaxMessageBytes
	srv.MaxRecipients = l.MaxRecipients
	srv.MaxLineLength = MaxLineLength
	srv.TLSConfig = l.TLS
	srv.EnableSMTPUTF8 = true
	srv.ReadTimeout = 10 * time.Minute
	srv.WriteTimeout = 10 * time.Minute
	srv.ErrorLog = ServerLog{Log: log, Service: service}
	return srv
}

// ServeSMTP runs serve (srv.Serve or srv.ServeTLS) on ln and answers
// nil once the server was closed or shut down.
func ServeSMTP(serve func(net.Listener) error, ln net.Listener) error {
	err := serve(ln)
	if errors.Is(err, smtp.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
