package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/mailcore/store"
)

// purgeInterval is how often serve looks for deleted accounts whose
// retention has ended.
const purgeInterval = time.Hour

// lifecycle answers the account lifecycle over s as configured.
func (a *app) lifecycle(s *directory.Store) *directory.Lifecycle {
	return &directory.Lifecycle{
		Store:     s,
		Domain:    a.cfg.Mail.Domain,
		Retention: a.cfg.Directory.Retention,
		Log:       a.log,
	}
}

func (a *app) accountCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "account",
		Short: "Manage mail accounts' lifecycle",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "purge",
		Short: "Remove the deleted accounts whose retention period has ended",
		Long: "Remove, for good, every deleted account whose retention period has\n" +
			"ended: its mail first, then its directory rows. serve does the same\n" +
			"every hour.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer s.Close()
			life := a.lifecycle(s)
			// The store is not opened here: a serving process may be
			// using it. Only the folders of purged accounts go.
			mailDir := filepath.Join(a.cfg.Node.DataDir, "mail")
			life.RemoveMailbox = func(_ context.Context, accountID string) error {
				return store.RemoveAccountFolder(mailDir, accountID)
			}
			ids, err := life.PurgeExpired(cmd.Context(), time.Now())
			for _, id := range ids {
				fmt.Fprintf(a.stdout, "purged %s\n", id)
			}
			if err != nil {
				return err
			}
			a.log.Info("purge finished", slog.Int("accounts", len(ids)))
			return nil
		},
	})
	cmd.AddCommand(a.moveHomeCmd())
	return cmd
}
