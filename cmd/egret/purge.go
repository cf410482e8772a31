package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
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
			return a.withStore(cmd, func(s *directory.Store) error {
				life := a.lifecycle(s)
				remove, err := a.purgeRemover(s)
				if err != nil {
					return err
				}
				life.RemoveMailbox = remove
				ids, err := life.PurgeExpired(cmd.Context(), time.Now())
				for _, id := range ids {
					fmt.Fprintf(a.stdout, "purged %s\n", id)
				}
				if err != nil {
					return err
				}
				a.log.Info("purge finished", slog.Int("accounts", len(ids)))
				return nil
			})
		},
	})
	cmd.AddCommand(a.moveHomeCmd())
	return cmd
}

// purgeRemover answers how the purge command removes an account's
// mail. On a node of role all the store is not opened, as a serving
// process may be using it: only the folders of purged accounts go. A
// front asks each account's back; a back refuses, as its purge would
// remove the directory rows of mail held on other backs.
func (a *app) purgeRemover(s *directory.Store) (func(context.Context, string) error, error) {
	switch a.cfg.Node.Role {
	case "front":
		backs, err := a.cfg.clusterBacks()
		if err != nil {
			return nil, err
		}
		f := &frontMailboxes{dir: s, backs: backs, secret: a.cfg.Cluster.ProxySecret,
			client: &http.Client{}}
		members, err := a.cfg.clusterMembers()
		if err != nil {
			return nil, err
		}
		f.back = (&homes{backs: backs, members: members}).back
		return f.Remove, nil
	case "back":
		return nil, errors.New("account purge: a back leaves purges to its fronts; run it on a front")
	}
	mailDir := filepath.Join(a.cfg.Node.DataDir, "mail")
	return func(_ context.Context, accountID string) error {
		return store.RemoveAccountFolder(mailDir, accountID)
	}, nil
}
