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
	"github.com/egretair/egret/mailcore/node"
	"github.com/egretair/egret/mailcore/outbound"
	"github.com/egretair/egret/mailcore/queue"
	"github.com/egretair/egret/mailcore/smtpd"
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
		"import the OA snapshot in `FILE` before serving, as \"egret oa import FILE\" does")
	return cmd
}

func (a *app) serve(ctx context.Context, importFile string) error {
	cfg := a.cfg
	log := a.log
	// A front takes mail and keeps the queue; a back keeps the store
	// and takes LMTP; role all is both (see roles.go).
	isFront, isBack := cfg.Node.Role != "back", cfg.Node.Role != "front"
	if err := os.MkdirAll(cfg.Node.DataDir, 0o750); err != nil {
		return fmt.Errorf("data folder: %w", err)
	}

	dir, err := a.openStore(ctx)
	if err != nil {
		return err
	}
	defer dir.Close()
	api.WatchDatabases(dir.Health)
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
	// A back serves its store under a lease (see backpair.go).
	mail, pair, err := a.openBackStore(ctx, dir)
	if err != nil {
		return err
	}
	defer mail.Close()
	accounts := mailAccounts{store: dir}
	var oidcProv *oidcp.Provider
	if isFront {
		if oidcProv, err = a.oidcProvider(ctx, dir); err != nil {
			return err
		}
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

	var fr *frontParts
	if cfg.Node.Role == "front" {
		if fr, err = a.front(dir, log); err != nil {
			return err
		}
	}

	// The queue first: its lock makes sure no other process serves
	// this data folder before the LMTP socket is taken over.
	lmtpAddr := lmtpAddress(cfg)
	var q *queue.Queue
	if isFront {
		transport, err := mailTransport(cfg, lmtpAddr, log)
		if err != nil {
			return err
		}
		if fr != nil {
			transport.Local = fr.transport
		}
		q, err = openQueue(cfg, transport, log)
		if err != nil {
			return err
		}
		defer q.Close()
		if fr != nil {
			fr.retryOnRecovery(q, cfg.Mail.Domain)
		}
		q.Notifier = dsn.New(dsn.Config{Hostname: cfg.Node.Hostname,
			From: "postmaster@" + cfg.Mail.Domain}, q, log)
	}
	var lmtpLn net.Listener
	if isBack {
		if lmtpLn, err = listenLMTP(lmtpAddr); err != nil {
			return err
		}
	}

	// Every listener is bound before any is served, so a port in use
	// stops the start cleanly and /healthz never says ready too early.
	httpLn, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		closeAll(lmtpLn)
		return fmt.Errorf("http listener: %w", err)
	}
	imapLn, err := net.Listen("tcp", cfg.IMAP.Addr)
	if err != nil {
		closeAll(lmtpLn, httpLn)
		return fmt.Errorf("imap listener: %w", err)
	}
	var smtpLn, subLn, subTLSLn net.Listener
	if isFront {
		smtpLn, err = net.Listen("tcp", cfg.SMTP.Addr)
		if err != nil {
			closeAll(lmtpLn, httpLn, imapLn)
			return fmt.Errorf("smtp listener: %w", err)
		}
		subLn, subTLSLn, err = listenSubmission(cfg)
		if err != nil {
			closeAll(lmtpLn, httpLn, smtpLn, imapLn)
			return err
		}

		// Only a node that holds its ports may change the bootstrap
		// key, so a second start that fails on a busy port changes
		// nothing.
		if err := a.seedBootstrapKey(ctx, dir); err != nil {
			closeAll(lmtpLn, httpLn, smtpLn, imapLn, subLn, subTLSLn)
			return err
		}
	}

	life := a.lifecycle(dir)
	life.RemoveMailbox = mail.RemoveAccount
	if fr != nil {
		// A front's mail is on the backs (see mailbox.go).
		life.RemoveMailbox = fr.mailboxes(cfg.Cluster.ProxySecret).Remove
	}
	if isFront {
		// Mail to postmaster is refused until this is mended; the
		// rest of the node works. A back leaves the directory to its
		// fronts.
		if _, err := life.EnsurePostmaster(ctx); err != nil {
			log.Error("postmaster mailbox missing", slog.Any("err", err))
		}
	}
	apiSrv := &api.Server{Store: dir, Importer: importer, Log: log, MaxSnapshotBytes: cfg.HTTP.MaxSnapshotBytes,
		Lifecycle: life}
	apiSrv.SSO, apiSrv.Web, apiSrv.Mail, apiSrv.WebURL = signin.sso, signin.web.Handler(), signin.view, signin.url
	if fr != nil {
		apiSrv.Web = fr.webRelay(apiSrv.Web, signin, cfg.Cluster.ProxySecret, log)
		apiSrv.Facts = &frontFacts{homes: fr.homes, peers: fr.peers,
			secret: cfg.Cluster.ProxySecret, client: &http.Client{}}
	}

	// Each service makes its server afresh on every run: a server that
	// was shut down does not serve again.
	tree := node.NewTree(cfg.nodeName(), log, api.Registry)
	started := time.Now()
	mux := http.NewServeMux()
	mux.Handle("GET /heartbeat", tree.HeartbeatHandler(func(ctx context.Context) node.Heartbeat {
		hb := a.heartbeat(ctx, dir, q, started)
		if fr != nil {
			hb.Breakers = fr.peers.Status()
		}
		if pair != nil {
			hb.Lease = pair.status(ctx)
		}
		return hb
	}))
	if isFront {
		mux.Handle("/", withOIDC(apiSrv.Handler(), oidcProv))
	} else {
		src, err := cfg.proxySources()
		if err != nil {
			closeAll(lmtpLn, httpLn, imapLn)
			return err
		}
		mux.Handle("GET "+factsPath+"{account}", &backFacts{dir: dir, view: signin.view,
			secret: cfg.Cluster.ProxySecret, sources: src, log: log})
		mux.Handle("DELETE "+factsPath+"{account}", &backMailbox{dir: dir, mail: mail,
			secret: cfg.Cluster.ProxySecret, sources: src, log: log})
		mux.Handle("/", backHTTP(apiSrv.Handler(), func(r *http.Request) bool {
			return fromFront(r, cfg.Cluster.ProxySecret, src)
		}))
	}
	tree.Add("http", node.Listening(httpLn, nil, func(ctx context.Context, ln net.Listener) error {
		srv := &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
		return node.Until(ctx, shutdownGrace, func() error { return quiet(srv.Serve(ln)) }, srv.Shutdown)
	}))
	if pair != nil {
		// Before IMAP and LMTP, so it stops after them: the lease is
		// given back once nothing is written under it.
		tree.Add("lease", pair.keeper.Run)
	}
	proxyLogin, err := a.proxyLogin()
	if err != nil {
		closeAll(lmtpLn, httpLn, smtpLn, imapLn, subLn, subTLSLn)
		return err
	}
	tree.Add("imap", node.Listening(imapLn, nil, func(ctx context.Context, ln net.Listener) error {
		var srv interface {
			Serve(net.Listener) error
			Close() error
		}
		if fr != nil {
			srv = fr.imapProxy(tlsConfig, signin.guard, mailAuth, cfg.Cluster.ProxySecret, log)
		} else {
			srv = imapd.New(imapd.Config{TLS: tlsConfig, Guard: signin.guard, Proxy: proxyLogin},
				mailAuth, mail, log)
			ln = pair.gate(ln, imapStandby)
		}
		return node.Until(ctx, shutdownGrace, func() error { return srv.Serve(ln) },
			func(context.Context) error { return srv.Close() })
	}))
	if fr != nil {
		tree.Add("peers", fr.peers.Run)
	}
	if isBack {
		a.addLMTP(tree, lmtpLn, lmtpAddr, accounts, mail, pair)
	}
	if !isFront {
		// A back serves IMAP, LMTP and its heartbeat only.
		return a.run(ctx, tree, apiSrv,
			slog.String("http", httpLn.Addr().String()),
			slog.String("imap", imapLn.Addr().String()),
			slog.String("lmtp", lmtpAddr))
	}
	// Not yet: the queue's dispatcher and workers are its own
	// goroutines, out of the supervisor's sight; a panic there ends the
	// process and systemd restarts it. The service owns the queue's
	// life: stopping it waits for the attempts in flight.
	tree.Add("queue", func(ctx context.Context) error {
		q.Start()
		<-ctx.Done()
		return q.Close()
	})
	tree.Add("purger", func(ctx context.Context) error {
		life.RunPurger(ctx, purgeInterval)
		return nil
	})
	if m := a.ldapMirror(dir, api.Registry); m != nil {
		tree.Add("ldap_mirror", m.Run)
	}
	if pull := a.oaPull(importer); pull != nil {
		tree.Add("oa_pull", pull)
	}
	submissionConfig := submission.Config{
		Domain:          cfg.Mail.Domain,
		Hostname:        cfg.Node.Hostname,
		TLS:             tlsConfig,
		MaxMessageBytes: cfg.SMTP.MaxMessageBytes,
		MaxRecipients:   cfg.Submission.MaxRecipients,
		MessagesPerHour: cfg.Submission.MessagesPerHour,
		Guard:           signin.guard,
	}
	if subLn != nil {
		tree.Add("submission", node.Listening(subLn, nil, func(ctx context.Context, ln net.Listener) error {
			srv := submission.New(submissionConfig, mailAuth, q, log)
			return node.Until(ctx, shutdownGrace, func() error { return srv.Serve(ln) }, srv.Shutdown)
		}))
	}
	if subTLSLn != nil {
		tree.Add("submission_tls", node.Listening(subTLSLn, nil, func(ctx context.Context, ln net.Listener) error {
			srv := submission.New(submissionConfig, mailAuth, q, log)
			return node.Until(ctx, shutdownGrace, func() error { return srv.ServeTLS(ln) }, srv.Shutdown)
		}))
	}
	// A front's own store is empty: the quota is left to the back's
	// LMTP, whose 452 the queue retries and whose 552 it bounces.
	usage := mailUsage(mail)
	if fr != nil {
		usage = nil
	}
	// SMTP last, so it stops first: transactions in flight finish and
	// are queued while the queue and the store under it still run.
	tree.Add("smtp", node.Listening(smtpLn, nil, func(ctx context.Context, ln net.Listener) error {
		srv := smtpd.New(smtpd.Config{
			Domain:          cfg.Mail.Domain,
			Hostname:        cfg.Node.Hostname,
			MaxMessageBytes: cfg.SMTP.MaxMessageBytes,
			TLS:             tlsConfig,
			Usage:           usage,
		}, accounts, q, log)
		return node.Until(ctx, shutdownGrace, func() error { return srv.Serve(ln) }, srv.Shutdown)
	}))

	addrs := []slog.Attr{
		slog.String("http", httpLn.Addr().String()),
		slog.String("smtp", smtpLn.Addr().String()),
		slog.String("imap", imapLn.Addr().String()),
	}
	if isBack {
		// A front delivers to its backs and serves no LMTP.
		addrs = append(addrs, slog.String("lmtp", lmtpAddr))
	}
	return a.run(ctx, tree, apiSrv, addrs...)
}

// run starts the tree, marks the node ready, and stops the tree when
// ctx ends. addrs are logged with the start.
func (a *app) run(ctx context.Context, tree *node.Tree, apiSrv *api.Server, addrs ...slog.Attr) error {
	cfg, log := a.cfg, a.log
	// The tree outlives the signal's context: Stop below takes the
	// services down one by one, in order, once ctx ends.
	tree.Start(context.WithoutCancel(ctx))
	apiSrv.SetReady(true)
	stopDrills := a.failOnSignal(tree)
	defer stopDrills()
	attrs := []any{
		slog.String("node", cfg.nodeName()),
		slog.String("role", cfg.Node.Role),
		slog.String("version", buildVersion()),
	}
	for _, at := range addrs {
		attrs = append(attrs, at)
	}
	log.Info("egret started", append(attrs, slog.String("mail_domain", cfg.Mail.Domain))...)

	<-ctx.Done()
	log.Info("shutting down", slog.String("cause", "signal"))
	apiSrv.SetReady(false)
	tree.Stop(shutdownGrace)
	log.Info("egret stopped")
	return nil
}

// quiet answers nil for the errors a server gives when it was shut
// down, and err otherwise.
func quiet(err error) error {
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// closeAll closes the listeners bound so far when a start is abandoned.
func closeAll(lns ...net.Listener) {
	for _, ln := range lns {
		if ln != nil {
			ln.Close()
		}
	}
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
// scope, or, on a node of role all with none configured, revokes one
// seeded before: taking the variable away must take the access away
// too. A front leaves it alone (see below).
func (a *app) seedBootstrapKey(ctx context.Context, dir *directory.Store) error {
	if k := a.cfg.API.BootstrapKey; k != "" {
		_, err := dir.EnsureAPIKey(ctx, bootstrapKeyName, k, []string{directory.ScopeAll})
		return err
	}
	if a.cfg.Node.Role == "front" {
		// In a cluster every front shares the one directory: a front
		// started without the variable must not revoke the key the
		// others were given. There it goes by "egret apikey revoke".
		return nil
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
