package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/directory/ldapmirror"
)

// ldapConfig answers the mirror's connection settings.
func (a *app) ldapConfig() ldapmirror.Config {
	c := a.cfg.LDAP
	return ldapmirror.Config{URL: c.URL, BindDN: c.BindDN, Password: c.BindPassword,
		BaseDN: c.BaseDN, Conns: c.Connections}
}

// ldapMirror answers the mirror serve runs as a service, or nil, having
// said so, when it is off.
func (a *app) ldapMirror(dir *directory.Store, reg prometheus.Registerer) *ldapmirror.Mirror {
	if a.cfg.LDAP.URL == "" {
		a.log.Info("ldap mirror off", slog.String("cause", "ldap.url is not set"))
		return nil
	}
	a.log.Info("ldap mirror on", slog.String("url", a.cfg.LDAP.URL),
		slog.String("base_dn", a.cfg.LDAP.BaseDN),
		slog.Duration("reconcile_interval", a.cfg.LDAP.ReconcileInterval))
	return &ldapmirror.Mirror{
		Config:         a.ldapConfig(),
		Store:          dir,
		Log:            a.log,
		Metrics:        ldapmirror.NewMetrics(reg),
		ReconcileEvery: a.cfg.LDAP.ReconcileInterval,
	}
}

func (a *app) ldapCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ldap",
		Short: "Compare, repair and export the LDAP mirror",
	}

	var dry bool
	var asJSON bool
	reconcile := &cobra.Command{
		Use:   "reconcile",
		Short: "Compare the whole directory with LDAP and repair drift",
		Long: "Compare every unit, person and group with its LDAP entry, and put back\n" +
			"what was edited, moved or deleted by hand; delete what egret did not\n" +
			"make under the base DN. The report names each entry changed.\n" +
			"With --dry-run nothing is written. serve does the same every\n" +
			"ldap.reconcile_interval.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if a.cfg.LDAP.URL == "" {
				return errors.New("ldap.url is not set (EGRET_LDAP_URL)")
			}
			s, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer s.Close()
			m := &ldapmirror.Mirror{Config: a.ldapConfig(), Store: s, Log: a.log}
			rep, err := m.Reconcile(cmd.Context(), dry)
			if rep != nil {
				if asJSON {
					enc := json.NewEncoder(a.stdout)
					enc.SetIndent("", "  ")
					enc.Encode(rep)
				} else {
					printReport(a.stdout, rep)
				}
			}
			return err
		},
	}
	reconcile.Flags().BoolVar(&dry, "dry-run", false, "report the drift without repairing it")
	reconcile.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")

	var out string
	export := &cobra.Command{
		Use:   "export-ldif",
		Short: "Write the directory as LDIF that ldapadd loads",
		Long: "Write the tree egret keeps under ldap.base_dn, base entry first, as\n" +
			"LDIF (RFC 2849) to stdout or --output. It reads the database only;\n" +
			"no LDAP server is needed.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if a.cfg.LDAP.BaseDN == "" {
				return errors.New("ldap.base_dn is not set (EGRET_LDAP_BASE_DN)")
			}
			s, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer s.Close()
			w := a.stdout
			var f *os.File
			if out != "" && out != "-" {
				if f, err = os.Create(out); err != nil {
					return err
				}
				w = f
			}
			n, err := ldapmirror.ExportLDIF(cmd.Context(), s, a.cfg.LDAP.BaseDN, w)
			if f != nil {
				// The file is synced before it is reported written.
				if serr := f.Sync(); err == nil {
					err = serr
				}
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
			if err != nil {
				return fmt.Errorf("export ldif: %w", err)
			}
			a.log.Info("ldif exported", slog.Int("entries", n), slog.String("file", out))
			return nil
		},
	}
	export.Flags().StringVarP(&out, "output", "o", "", "write to this file instead of stdout")

	cmd.AddCommand(reconcile, export)
	return cmd
}

// printReport writes a reconcile report: counts, then each DN.
func printReport(w io.Writer, r *ldapmirror.Report) {
	verb := "changed"
	if r.DryRun {
		verb = "would change (dry run)"
	}
	fmt.Fprintf(w, "reconcile %s: %d added, %d moved, %d modified, %d deleted, %d unchanged\n",
		verb, len(r.Added), len(r.Moved), len(r.Modified), len(r.Deleted), r.Unchanged)
	for _, l := range []struct {
		what string
		dns  []string
	}{{"added", r.Added}, {"moved", r.Moved}, {"modified", r.Modified}, {"deleted", r.Deleted}} {
		for _, dn := range l.dns {
			fmt.Fprintf(w, "  %-8s %s\n", l.what, dn)
		}
	}
}
