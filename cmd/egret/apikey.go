package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/egretair/egret/directory"
)

func (a *app) apikeyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "apikey",
		Short: "Manage API keys",
	}
	var scopes []string
	create := &cobra.Command{
		Use:   "create NAME --scope SCOPE...",
		Short: "Make an API key and print its secret, which is shown this once",
		Long: "Make an API key with the given scopes (" + strings.Join(directory.Scopes, ", ") + ")\n" +
			"and print its secret on standard output. Only its SHA-256 digest is kept.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(cmd, func(s *directory.Store) error {
				k, secret, err := s.IssueAPIKey(cmd.Context(), args[0], scopes)
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stderr, "API key %s (%s) created with scopes %s\n", k.Name, k.ID, k.Scopes)
				fmt.Fprintln(a.stdout, secret)
				return nil
			})
		},
	}
	create.Flags().StringSliceVar(&scopes, "scope", nil, "a scope the key grants; repeat or separate with commas")
	create.MarkFlagRequired("scope")

	list := &cobra.Command{
		Use:   "list",
		Short: "List API keys, live and revoked (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(cmd, func(s *directory.Store) error {
				keys, err := s.ListAPIKeys(cmd.Context())
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tID\tSCOPES\tCREATED\tSTATE")
				for _, k := range keys {
					state := "live"
					if k.RevokedAt != nil {
						state = "revoked " + k.RevokedAt.Format(time.RFC3339)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.Name, k.ID, k.Scopes, k.CreatedAt.Format(time.RFC3339), state)
				}
				return tw.Flush()
			})
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke NAME|ID",
		Short: "Revoke a live API key; requests with it are refused at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(cmd, func(s *directory.Store) error {
				k, err := s.RevokeAPIKey(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "API key %s (%s) revoked\n", k.Name, k.ID)
				return nil
			})
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}
