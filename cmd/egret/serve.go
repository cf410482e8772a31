package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/egretair/egret/api"
	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/mailcore"
	"github.com/egretair/egret/mailcore/dkim"
	"github.com/egretair/egret/mailcore/dsn"
	"github.com/egretair/egret/mailcore/imapd"
	"github.com/egretair/egret/mailcore/lmtp"
	"github.com/egretair/egret/mailcore/outbound"
	"github.com/egretair/egret/mailcore/smtpd"
	"github.com/egretair/egret/mailcore/store"
	"github.com/egretair/egret/mailcore/submission"
	"github.com/egretair/egret/mailcore/tlsconf"
	"github.com/egretair/egret/oasync"
	"github.com/egretair/egret/sso/oauthbearer"
	"github.com/egretair/egret/sso/oidcp"
)

// shutdownGrace bounds how long SIGTERM waits for SMTP transactions and
// HTTP requests in flight.
const shutdownGrace = 30 * time.Second

func (a *app) serveCmd() *cobra.Command {
	var importFile string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the node: HTTP API, SMTP and IMAP",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.serve(cmd.Context(), importFile)
		},
	}
	cmd.Flags().StringVar(&importFile, "import", "",
		"import this OA snapshot before serving (as `egret oa import` does)")
	return cmd
}

func (a *app) serve(ctx context.Context, importFile string) error {
	cfg := a.cfg
	log := a.log
	if err := os.MkdirAll(cfg.Node.DataDir, 0o750); err != nil {
		return fmt.Errorf("data folder: %w", err)
	}

	dir, err := a.openStore(ctx)
	if err != nil {
		return err
	}
	defer dir.Close()
	importer := a.importer(dir)
	if importFile != "" {
		if err := a.importAtStart(ctx, importer, importFile); err != nil {
			return err
		}
	}

	tlsConfig, err := tlsconf.LoadOrCreate(cfg.TLS.CertFile, cfg.TLS.KeyFile, cfg.Node.DataDir, cfg.Node.Hostname)
	if err != nil {
		return err
	}
	mail, err := store.Open(filepath.Join(cfg.Node.DataDir, "mail"), log)
	if err != nil {
		return err
	}
	defer mail.Close()
	accounts := mailAccounts{store: dir}
	oidcProv, err := a.oidcProvider(ctx, dir)
	if err != nil {
		return err
	}
	var mailAuth interface {
		mailcore.Accounts
		mailcore.Senders
	} = accounts
	if oidcProv != nil {
		mailAuth = tokenAccounts{mailAccounts: accounts, verifier: &oauthbearer.Verifier{
			Issuer: a.cfg.issuer(), Keys: oidcProv.Keys(), Users: oidcp.Users{Store: dir}}}
	}

	signin, err := a.signIn(dir, mail, accounts, log)
	if err != nil {
		return err
	}

	// The queue first: its lock makes sure no other process serves
	// this data folder before the LMTP socket is taken over.
	lmtpAddr := lmtpAddress(cfg)
	transport, err := mailTransport(cfg, lmtpAddr, log)
	if err != nil {
		return err
	}
	q, err := openQueue(cfg, transport, log)
	if err != nil {
		return err
	}
	defer q.Close()
	q.Notifier = dsn.New(dsn.Config{Hostname: cfg.Node.Hostname,
		From: "postmaster@" + cfg.Mail.Domain}, q, log)
	lmtpLn, err := listenLMTP(lmtpAddr)
	if err != nil {
		return err
	}
	lmtpSrv := lmtp.NewServer(lmtp.Config{
		Hostname:        cfg.Node.Hostname,
		MaxMessageBytes: cfg.SMTP.MaxMessageBytes + 1<<20,
	}, accounts, mail, log)
	defer lmtpSrv.Close()

	// Every listener is bound before any is served, so a port in use
	// stops the start cleanly and /healthz never says ready too early.
	httpLn, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("http listener: %w", err)
	}
	smtpLn, err := net.Listen("tcp", cfg.SMTP.Addr)
	if err != nil {
		httpLn.Close()
		return fmt.Errorf("smtp listener: %w", err)
	}
	imapLn, err := net.Listen("tcp", cfg.IMAP.Addr)
	if err != nil {
		httpLn.Close()
		smtpLn.Close()
		return fmt.Errorf("imap listener: %w", err)
	}

	subLn, subTLSLn, err := listenSubmission(cfg)
	if err != nil {
		httpLn.Close()
		smtpLn.Close()
		imapLn.Close()
		return err
	}

	// Only a node that holds its ports may change the bootstrap key, so
	// a second start that fails on a busy port changes nothing.
	if err := a.seedBootstrapKey(ctx, dir); err != nil {
		httpLn.Close()
		smtpLn.Close()
		imapLn.Close()
		return err
	}

	life := a.lifecycle(dir)
	life.RemoveMailbox = mail.RemoveAccount
	if _, err := life.EnsurePostmaster(ctx); err != nil {
		// Mail to postmaster is refused until this is mended; the
		// rest of the node works.
		log.Error("postmaster mailbox missing", slog.Any("err", err))
	}
	apiSrv := &api.Server{Store: dir, Importer: importer, Log: log, MaxSnapshotBytes: cfg.HTTP.MaxSnapshotBytes,
		Lifecycle: life}
	apiSrv.SSO, apiSrv.Web, apiSrv.Mail, apiSrv.WebURL = signin.sso, signin.web.Handler(), signin.view, signin.url
	httpSrv := &http.Server{
		Handler:           withOIDC(apiSrv.Handler(), oidcProv),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	smtpSrv := smtpd.New(smtpd.Config{
		Domain:          cfg.Mail.Domain,
		Hostname:        cfg.Node.Hostname,
		MaxMessageBytes: cfg.SMTP.MaxMessageBytes,
		TLS:             tlsConfig,
		Usage:           mailUsage(mail),
	}, accounts, q, log)
	imapSrv := imapd.New(imapd.Config{TLS: tlsConfig, Guard: signin.guard}, mailAuth, mail, log)
	subSrv := submission.New(submission.Config{
		Domain:          cfg.Mail.Domain,
		Hostname:        cfg.Node.Hostname,
		TLS:             tlsConfig,
		MaxMessageBytes: cfg.SMTP.MaxMessageBytes,
		MaxRecipients:   cfg.Submission.MaxRecipients,
		MessagesPerHour: cfg.Submission.MessagesPerHour,
		Guard:           signin.guard,
	}, mailAuth, q, log)

	errc := make(chan error, 6)
	go func() { errc <- serveErr("lmtp", lmtpSrv.Serve(lmtpLn)) }()
	q.Start()
	go func() { errc <- serveErr("http", httpSrv.Serve(httpLn)) }()
	purgeCtx, stopPurge := context.WithCancel(ctx)
	defer stopPurge()
	go life.RunPurger(purgeCtx, purgeInterval)
	go func() { errc <- serveErr("smtp", smtpSrv.Serve(smtpLn)) }()
	go func() { errc <- serveErr("imap", imapSrv.Serve(imapLn)) }()
	if subLn != nil {
		go func() { errc <- serveErr("submission", subSrv.Serve(subLn)) }()
	}
	if subTLSLn != nil {
		go func() { errc <- serveErr("submission tls", subSrv.ServeTLS(subTLSLn)) }()
	}
	apiSrv.SetReady(true)
	a.startOAPull(ctx, importer)
	// The mirror stops before the store it reads is closed.
	mirrorCtx, stopMirror := context.WithCancel(ctx)
	mirrorDone := a.startLDAPMirror(mirrorCtx, dir, api.Registry)
	defer func() { stopMirror(); <-mirrorDone }()
	log.Info("egret started",
		slog.String("role", cfg.Node.Role),
		slog.String("version", buildVersion()),
		slog.String("http", httpLn.Addr().String()),
		slog.String("smtp", smtpLn.Addr().String()),
		slog.String("imap", imapLn.Addr().String()),
		slog.String("lmtp", lmtpAddr),
		slog.String("mail_domain", cfg.Mail.Domain))

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", slog.String("cause", "signal"))
	case runErr = <-errc:
		log.Error("listener failed, shutting down", slog.Any("err", runErr))
	}
	apiSrv.SetReady(false)

	// SMTP first: transactions in flight finish and are stored before
	// the process exits; new connections are refused meanwhile.
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := smtpSrv.Shutdown(sctx); err != nil {
		log.Warn("smtp shutdown", slog.Any("err", err))
	}
	if err := subSrv.Shutdown(sctx); err != nil {
		log.Warn("submission shutdown", slog.Any("err", err))
	}
	// Then the queue, which waits for its attempts in flight, then
	// the LMTP server they talk to.
	if err := q.Close(); err != nil {
		log.Warn("queue shutdown", slog.Any("err", err))
	}
	if err := lmtpSrv.Close(); err != nil {
		log.Warn("lmtp shutdown", slog.Any("err", err))
	}
	if err := imapSrv.Close(); err != nil {
		log.Warn("imap shutdown", slog.Any("err", err))
	}
	if err := httpSrv.Shutdown(sctx); err != nil {
		log.Warn("http shutdown", slog.Any("err", err))
	}
	log.Info("egret stopped")
	return runErr
}

// serveErr names the listener whose Serve returned. It is read only
// before shutdown begins, when any return is a failure.
func serveErr(name string, err error) error {
	if err == nil || errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("%s: listener closed", name)
	}
	return fmt.Errorf("%s: %w", name, err)
}

func (a *app) importAtStart(ctx context.Context, imp *oasync.Importer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	report, err := imp.ImportSnapshot(ctx, f, oasync.Options{})
	if err != nil {
		return fmt.Errorf("import %s: %w", path, err)
	}
	a.log.Info("snapshot imported", slog.String("file", path), slog.Any("report", report))
	return nil
}

// bootstrapKeyName names the key that EGRET_API_BOOTSTRAP_KEY seeds.
const bootstrapKeyName = "bootstrap"

// seedBootstrapKey makes the configured bootstrap key live with every
// scope, or, when none is configured, revokes one seeded before: taking
// the variable away must take the access away too.
func (a *app) seedBootstrapKey(ctx context.Context, dir *directory.Store) error {
	if k := a.cfg.API.BootstrapKey; k != "" {
		_, err := dir.EnsureAPIKey(ctx, bootstrapKeyName, k, []string{directory.ScopeAll})
		return err
	}
	_, err := dir.RevokeAPIKey(ctx, bootstrapKeyName)
	if errors.Is(err, directory.ErrNotFound) {
		return nil
	}
	if err == nil {
		a.log.Info("bootstrap API key revoked", slog.String("cause", "api.bootstrap_key is not set"))
	}
	return err
}

// mailTransport answers the queue's transport: LMTP to the store for
// the mail domain, SMTP to the MX hosts of every other, signed with the
// keys in <data>/dkim.
func mailTransport(cfg Config, lmtpAddr string, log *slog.Logger) (*outbound.Router, error) {
	keys, err := dkim.Load(filepath.Join(cfg.Node.DataDir, "dkim"))
	if err != nil {
		return nil, err
	}
	remote := outbound.NewRemote(outbound.Config{
		Hostname:  cfg.Node.Hostname,
		Resolver:  cfg.Outbound.Resolver,
		Port:      cfg.Outbound.Port,
		VerifyTLS: cfg.Outbound.VerifyTLS,
		Keys:      keys,
	}, log)
	return &outbound.Router{
		IsLocal: func(domain string) bool { return domain == cfg.Mail.Domain },
		Local:   &lmtp.Client{Addr: lmtpAddr, LocalName: cfg.Node.Hostname},
		Remote:  remote,
	}, nil
}

// listenSubmission binds the submission listeners that are configured;
// an empty address leaves one off.
func listenSubmission(cfg Config) (starttls, implicit net.Listener, err error) {
	if a := cfg.Submission.Addr; a != "" {
		if starttls, err = net.Listen("tcp", a); err != nil {
			return nil, nil, fmt.Errorf("submission listener: %w", err)
		}
	}
	if a := cfg.Submission.TLSAddr; a != "" {
		if implicit, err = net.Listen("tcp", a); err != nil {
			if starttls != nil {
				starttls.Close()
			}
			return nil, nil, fmt.Errorf("submission tls listener: %w", err)
		}
	}
	return starttls, implicit, nil
}
