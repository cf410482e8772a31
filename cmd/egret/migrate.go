package main

import (
	"fmt"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/egretair/egret/directory"
)

func (a *app) migrateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Manage the database schema",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "up",
		Short: "Apply every migration the database lacks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := directory.Connect(a.cfg.Database.URL)
			if err != nil {
				return err
			}
			defer s.Close()
			v, err := s.Migrate(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "database at version %d\n", v)
			return nil
		},
	}, &cobra.Command{
		Use:   "status",
		Short: "List the migrations and whether each is applied",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := directory.Connect(a.cfg.Database.URL)
			if err != nil {
				return err
			}
			defer s.Close()
			list, err := s.Migrations(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "VERSION\tSTATE\tNAME")
			for _, m := range list {
				state := "pending"
				if m.Applied {
					state = "applied"
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\n", m.Version, state, filepath.Base(m.Name))
			}
			return tw.Flush()
		},
	})
	return cmd
}
