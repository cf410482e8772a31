package main

import (
	"context"
	"fmt"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/oasync"
)

func (a *app) oaApplyCmd() *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "apply FILE",
		Short: "Apply a page of EKP changes (JSON, or gzipped JSON); - reads standard input",
		Long: "Apply a page of the OA's changes, elements in ascending alterTime, and\n" +
			"print the report as JSON. Records the page does not name are left as\n" +
			"they are; an element older than what egret holds is ignored and counted\n" +
			"as stale. An invalid page is refused whole and changes nothing.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runImport(cmd.Context(), args[0], "page", dryRun, (*oasync.Importer).ImportChanges)
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "plan and report, change nothing")
	return cmd
}

func (a *app) oaPlansCmd() *cobra.Command {
	var status string
	cmd := &cobra.Command{
		Use:   "plans",
		Short: "List the OA imports the safety valve held, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(cmd, func(s *directory.Store) error {
				plans, err := a.importer(s).Plans(cmd.Context(), status)
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tCREATED\tSOURCE\tSTATUS\tDISABLES\tBY")
				for _, p := range plans {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", p.ID, p.CreatedAt.Format(time.RFC3339),
						p.Source, p.Status, p.AccountsDisabled, p.Actor)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&status, "status", "", "only plans in this status: held, applied or superseded")

	show := &cobra.Command{
		Use:   "show ID",
		Short: "Print a plan with its report, listing every account it disables",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(cmd, func(s *directory.Store) error {
				p, err := a.importer(s).Plan(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				rep, err := p.Report()
				if err != nil {
					return err
				}
				return a.printJSON(struct {
					oasync.Plan
					Report *oasync.Report `json:"report"`
				}{*p, rep})
			})
		},
	}
	cmd.AddCommand(show)
	return cmd
}

func (a *app) oaApproveCmd() *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "approve ID",
		Short: "Apply an OA import the safety valve held",
		Long: "Plan the held input again against the directory as it is now and\n" +
			"apply it, past the threshold, when it disables no account the plan did\n" +
			"not list. When it would, nothing changes, the plan is superseded, and\n" +
			"importing the input again shows the new plan.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(cmd, func(s *directory.Store) error {
				report, err := a.importer(s).Approve(cmd.Context(), args[0], oasync.Options{DryRun: dryRun})
				return a.printImport("plan "+args[0], report, err)
			})
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "show what approving would do now, change nothing")
	return cmd
}

func (a *app) oaPullCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "pull",
		Short: "Pull the OA's changes from EKP once ([oa] ekp_url) and apply them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if a.cfg.OA.EKPURL == "" {
				return fmt.Errorf("oa.ekp_url is not set (EGRET_OA_EKP_URL); there is nothing to pull from")
			}
			s, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer s.Close()
			pr, err := a.puller(a.importer(s)).Run(cmd.Context())
			if err != nil {
				return err
			}
			if err := a.printJSON(pr); err != nil {
				return err
			}
			if pr.Report != nil && pr.Report.Held {
				return a.printImport("pull", pr.Report, nil)
			}
			return nil
		},
	}
}

func (a *app) puller(imp *oasync.Importer) *oasync.Puller {
	return &oasync.Puller{
		Importer: imp,
		URL:      a.cfg.OA.EKPURL,
		Token:    a.cfg.OA.EKPToken,
		PageSize: a.cfg.OA.PullPageSize,
	}
}

// oaPull answers the EKP pull connector's loop, which serve runs as a
// service until its context ends, or nil when [oa] ekp_url is not set.
func (a *app) oaPull(imp *oasync.Importer) func(context.Context) error {
	if a.cfg.OA.EKPURL == "" {
		a.log.Info("oa pull off: oa.ekp_url is not set")
		return nil
	}
	a.log.Info("oa pull on", slog.String("url", a.cfg.OA.EKPURL),
		slog.Duration("interval", a.cfg.OA.PullInterval))
	p := a.puller(imp)
	return func(ctx context.Context) error {
		p.Loop(ctx, a.cfg.OA.PullInterval)
		return nil
	}
}
