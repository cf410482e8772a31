package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/oasync"
)

func (a *app) oaCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "oa",
		Short: "Synchronise the directory with the OA system",
	}
	var dryRun bool
	imp := &cobra.Command{
		Use:   "import FILE",
		Short: "Import a full EKP org export (JSON, or gzipped JSON); - reads standard input",
		Long: "Import a full snapshot of the OA's organisation, as EKP's export\n" +
			"service returns it, and print the report as JSON. A snapshot with an\n" +
			"invalid element is refused whole and changes nothing.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runImport(cmd.Context(), args[0], "snapshot", dryRun, (*oasync.Importer).ImportSnapshot)
		},
	}
	imp.Flags().BoolVar(&dryRun, "dry-run", false, "plan and report, change nothing")
	cmd.AddCommand(imp, a.oaApplyCmd(), a.oaPlansCmd(), a.oaApproveCmd(), a.oaPullCmd())
	return cmd
}

func (a *app) importer(s *directory.Store) *oasync.Importer {
	return &oasync.Importer{
		Store:            s,
		Domain:           a.cfg.Mail.Domain,
		Log:              a.log,
		DisableThreshold: a.cfg.OA.DisableThreshold,
	}
}

// printImport prints an import's report as JSON, or its refusal; a held
// import prints its report too and fails, saying how to approve it.
func (a *app) printImport(what string, report *oasync.Report, err error) error {
	var invalid *oasync.InvalidError
	if errors.As(err, &invalid) {
		enc := json.NewEncoder(a.stderr)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		enc.Encode(map[string]any{"error": invalid.Error(), "problems": invalid.Problems})
		return fmt.Errorf("%s refused, nothing changed: %d problem(s)", what, len(invalid.Problems))
	}
	if err != nil {
		return err
	}
	if err := a.printJSON(report); err != nil {
		return err
	}
	if report.Held {
		return fmt.Errorf("%s held, nothing changed: it would disable %d accounts, more than "+
			"[oa] disable_threshold (%d); review with `egret oa plans show %s`, apply with "+
			"`egret oa approve %s`", what, report.Accounts.Disabled, report.Threshold,
			report.PlanID, report.PlanID)
	}
	return nil
}

func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// runImport feeds the file at path (- for standard input) to one of the
// importer's entry points and prints the report.
func (a *app) runImport(ctx context.Context, path, kind string, dryRun bool,
	run func(*oasync.Importer, context.Context, io.Reader, oasync.Options) (*oasync.Report, error)) error {
	in := a.stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	s, err := a.openStore(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	report, err := run(a.importer(s), ctx, in, oasync.Options{DryRun: dryRun})
	return a.printImport(kind, report, err)
}
