package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/sso/oidcp"
)

// oidcCmd manages the OpenID Connect provider: its clients and its
// signing keys, in the database that serve reads.
func (a *app) oidcCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "oidc", Short: "Manage OpenID Connect clients and signing keys"}
	client := &cobra.Command{Use: "client", Short: "Manage the applications that sign users in through egret"}

	var n oidcp.NewClient
	add := &cobra.Command{
		Use:   "add --redirect-uri URI... [--id ID] [--name NAME] [--public]",
		Short: "Register a client and print its secret, which is shown this once",
		Long: "Register a relying party. A confidential client (the default) gets a secret,\n" +
			"printed on standard output; only its SHA-256 digest is kept. A --public client\n" +
			"(a browser or native app) has none and must use PKCE with S256.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(cmd, func(s *directory.Store) error {
				c, secret, err := oidcp.Clients{DB: s.DB()}.Add(cmd.Context(), n)
				if err != nil {
					return err
				}
				kind := "confidential"
				if c.Public() {
					kind = "public"
				}
				fmt.Fprintf(a.stderr, "OIDC client %s (%s, %s) registered\n", c.ID, c.Name, kind)
				fmt.Fprintln(a.stdout, c.ID)
				if secret != "" {
					fmt.Fprintln(a.stdout, secret)
				}
				return nil
			})
		},
	}
	add.Flags().StringVar(&n.ID, "id", "", "the client_id; random when empty")
	add.Flags().StringVar(&n.Name, "name", "", "the name the login page shows")
	add.Flags().BoolVar(&n.Public, "public", false, "no secret; PKCE is required")
	add.Flags().StringSliceVar(&n.RedirectURIs, "redirect-uri", nil, "a redirect URI; repeat for more")
	add.Flags().StringSliceVar(&n.PostLogoutURIs, "post-logout-uri", nil, "a post-logout redirect URI; repeat for more")
	add.MarkFlagRequired("redirect-uri")

	list := &cobra.Command{
		Use:   "list",
		Short: "List registered clients (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(cmd, func(s *directory.Store) error {
				cs, err := oidcp.Clients{DB: s.DB()}.List(cmd.Context())
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tNAME\tKIND\tREDIRECT URIS\tCREATED")
				for _, c := range cs {
					kind := "confidential"
					if c.Public() {
						kind = "public"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.ID, c.Name, kind,
						strings.Join(c.Redirects(), " "), c.CreatedAt.Format(time.RFC3339))
				}
				return tw.Flush()
			})
		},
	}
	remove := &cobra.Command{
		Use:   "remove ID",
		Short: "Unregister a client; tokens it holds live until they expire",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(cmd, func(s *directory.Store) error {
				if err := (oidcp.Clients{DB: s.DB()}).Remove(cmd.Context(), args[0]); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "OIDC client %s removed\n", args[0])
				return nil
			})
		},
	}
	client.AddCommand(add, list, remove)

	rotate := &cobra.Command{
		Use:   "rotate-key",
		Short: "Sign new tokens with a new key; the old one verifies for oidc.key_grace",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(cmd, func(s *directory.Store) error {
				k, err := oidcp.Keys{DB: s.DB(), Grace: a.cfg.OIDC.KeyGrace}.Rotate(cmd.Context())
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "signing key %s is active; the previous key stays in the JWKS for the grace period\n", k.ID)
				return nil
			})
		},
	}
	cmd.AddCommand(client, rotate)
	return cmd
}
