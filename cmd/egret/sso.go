package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/mailcore"
	"github.com/egretair/egret/mailcore/mailview"
	"github.com/egretair/egret/mailcore/store"
	"github.com/egretair/egret/sso"
	"github.com/egretair/egret/sso/guard"
	"github.com/egretair/egret/sso/web"
)

// SSOConfig configures login links, the web mailbox's sessions and the
// sign-in guard. Zero durations and limits take the packages' defaults.
type SSOConfig struct {
	// URL is where browsers reach the web mailbox (scheme and host,
	// no path); login links point there. Empty means
	// http://<http.addr>, allowed only on a loopback address. With an
	// https URL session cookies are Secure; with http they are not,
	// which is only accepted for loopback.
	URL string `toml:"url"`
	// TokenTTL is how long a login token works [60s].
	TokenTTL time.Duration `toml:"token_ttl"`
	// SessionTTL is how long a web session lasts [8h].
	SessionTTL time.Duration `toml:"session_ttl"`
	// KeyGrace is how long a rotated preauth key still verifies [24h].
	KeyGrace time.Duration `toml:"key_grace"`
	// LockAfter is the failed sign-ins that lock an account [5];
	// LockAddressAfter those that lock a client address [20].
	LockAfter        int `toml:"lock_after"`
	LockAddressAfter int `toml:"lock_address_after"`
	// LockFor is how long a lock lasts [15m].
	LockFor time.Duration `toml:"lock_for"`
}

// webURL answers the web mailbox's base URL and whether its cookies
// must be Secure.
func (c Config) webURL() (string, bool, error) {
	raw := c.SSO.URL
	if raw == "" {
		raw = "http://" + c.HTTP.Addr
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", false, fmt.Errorf("sso.url %q: want scheme://host[:port]", raw)
	}
	switch u.Scheme {
	case "https":
		return "https://" + u.Host, true, nil
	case "http":
		// Cookies in the clear are only acceptable where nobody can
		// read the wire: the loopback interface.
		host := u.Hostname()
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return "", false, fmt.Errorf("sso.url %q: http only on loopback; use https", raw)
		}
		return "http://" + u.Host, false, nil
	}
	return "", false, fmt.Errorf("sso.url %q: want https://", raw)
}

// check reports what is wrong with the sso section.
func (c SSOConfig) check() error {
	if c.TokenTTL < 0 || c.SessionTTL < 0 || c.KeyGrace < 0 || c.LockFor < 0 ||
		c.LockAfter < 0 || c.LockAddressAfter < 0 {
		return errors.New("sso: durations and limits must not be negative (0 takes the default)")
	}
	if c.TokenTTL > 10*time.Minute {
		return fmt.Errorf("sso.token_ttl %v: a login link should live seconds, at most 10m", c.TokenTTL)
	}
	return nil
}

// signIn is what serve runs for sign-in: login links, the guard and
// the web mailbox.
type signIn struct {
	sso   *sso.Service
	guard *guard.Guard
	view  *mailview.Reader
	web   *web.Server
	url   string
}

func (a *app) signIn(dir *directory.Store, mail *store.Store, accounts mailcore.Accounts, log *slog.Logger) (*signIn, error) {
	cfg := a.cfg.SSO
	base, secure, err := a.cfg.webURL()
	if err != nil {
		return nil, err
	}
	if !secure {
		log.Warn("web mailbox over plain HTTP: session cookies are not Secure; loopback only",
			slog.String("url", base))
	}
	svc := &sso.Service{Dir: dir, TokenTTL: cfg.TokenTTL, SessionTTL: cfg.SessionTTL,
		KeyGrace: cfg.KeyGrace, Log: log}
	g := a.loginGuard(dir, log)
	view := &mailview.Reader{Store: mail}
	return &signIn{sso: svc, guard: g, view: view, url: base, web: &web.Server{
		SSO: svc, Mail: mail, View: view, Accounts: accounts, Guard: g, Secure: secure, Log: log}}, nil
}

// loginGuard answers the process's login guard, made at the first
// call: every door counts failures in the same guard, so a guesser
// gains nothing by moving from IMAP to the OIDC login page.
func (a *app) loginGuard(dir *directory.Store, log *slog.Logger) *guard.Guard {
	if a.signinGuard != nil {
		return a.signinGuard
	}
	cfg := a.cfg.SSO
	a.signinGuard = guard.New(guard.Config{AccountLimit: cfg.LockAfter,
		AddressLimit: cfg.LockAddressAfter, LockFor: cfg.LockFor,
		Resolve: func(ctx context.Context, user string) string {
			if acct, _, err := dir.FindAccount(ctx, user); err == nil {
				return acct.ID
			}
			return ""
		}, Read: dir.ReadPrimaryFirst}, dir.DB(), log)
	return a.signinGuard
}

func (a *app) ssoCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sso",
		Short: "Preauth keys for the OA's login links, and sign-in lockouts",
	}
	var domain string
	var rotate bool
	key := &cobra.Command{
		Use:   "key [--domain D] [--rotate]",
		Short: "Print a mail domain's preauth key, making it the first time",
		Long: "Print the key the OA signs preauth links with (see README, \"Login links\").\n" +
			"With --rotate a new key replaces it; the old one keeps working for\n" +
			"sso.key_grace so the OA can switch over. The key is a secret.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer dir.Close()
			if domain == "" {
				domain = a.cfg.Mail.Domain
			}
			svc := &sso.Service{Dir: dir, KeyGrace: a.cfg.SSO.KeyGrace}
			k, err := svc.PreauthKey(cmd.Context(), domain, rotate)
			if err != nil {
				return err
			}
			grace := a.cfg.SSO.KeyGrace
			if grace <= 0 {
				grace = sso.DefaultKeyGrace
			}
			switch {
			case rotate:
				fmt.Fprintf(a.stderr, "new preauth key %s for %s; the previous one works for %v more\n",
					k.ID, k.Domain, grace)
			case k.Created:
				fmt.Fprintf(a.stderr, "made preauth key %s for %s\n", k.ID, k.Domain)
			}
			fmt.Fprintln(a.stdout, k.Secret)
			return nil
		},
	}
	key.Flags().StringVar(&domain, "domain", "", "the mail domain (default: mail.domain)")
	key.Flags().BoolVar(&rotate, "rotate", false, "replace the key; the old one stays valid for sso.key_grace")

	unlock := &cobra.Command{
		Use:   "unlock USER|IP",
		Short: "Lift a sign-in lockout of an account (id, login, address) or a client address",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer dir.Close()
			who := args[0]
			if acct, _, err := dir.FindAccount(cmd.Context(), who); err == nil {
				who = acct.ID
			}
			n, err := guard.Unlock(cmd.Context(), dir.DB(), who)
			if err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("no lockout of %s", args[0])
			}
			fmt.Fprintf(a.stderr, "lifted %d lockout(s) of %s\n", n, args[0])
			return nil
		},
	}
	lockouts := &cobra.Command{
		Use:   "lockouts",
		Short: "List the sign-in lockouts in force",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer dir.Close()
			locks, err := guard.Lockouts(cmd.Context(), dir.DB(), time.Now())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SUBJECT\tACCOUNT\tFAILURES\tUNTIL")
			for _, l := range locks {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", l.Subject, l.AccountID, l.Failures, l.Until.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	cmd.AddCommand(key, unlock, lockouts)
	return cmd
}
