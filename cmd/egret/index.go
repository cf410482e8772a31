package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/egretair/egret/mailcore/queue"
	"github.com/egretair/egret/mailcore/store"
)

// errIndexDamaged makes `egret index check` exit non-zero when it finds
// damage, for scripts and monitoring.
var errIndexDamaged = errors.New("index: damage found; `egret index rebuild` mends it")

func (a *app) indexCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "index",
		Short: "Check or rebuild the mail index of accounts",
		Long: "The mail index (uidstate, uidvalidity and keywords files) is derived\n" +
			"from the message files. serve rebuilds a damaged one at the account's\n" +
			"next login by itself; these commands do it on demand.",
	}
	var all bool
	check := &cobra.Command{
		Use:   "check ACCOUNT|--all",
		Short: "Report damaged index files, changing nothing",
		Long: "Report damaged index files, changing nothing. Safe beside a running\n" +
			"serve. ACCOUNT is an account id, address or login.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := a.indexAccounts(cmd, args, all)
			if err != nil {
				return err
			}
			damaged := 0
			for _, id := range ids {
				problems, err := store.CheckIndex(a.mailDir(), id)
				if err != nil {
					return err
				}
				if len(problems) == 0 {
					fmt.Fprintf(a.stdout, "%s ok\n", id)
					continue
				}
				damaged++
				for _, p := range problems {
					fmt.Fprintf(a.stdout, "%s %s\n", id, p)
				}
			}
			if damaged > 0 {
				return fmt.Errorf("%w (%d of %d accounts)", errIndexDamaged, damaged, len(ids))
			}
			return nil
		},
	}
	check.Flags().BoolVar(&all, "all", false, "every account with mail on this node")

	var allRebuild bool
	rebuild := &cobra.Command{
		Use:   "rebuild ACCOUNT|--all",
		Short: "Rebuild the index from the message files",
		Long: "Rebuild the index from the message files, keeping UIDs, UIDVALIDITY\n" +
			"and flags. Refused while serve runs on this data folder: the server's\n" +
			"index in memory would not see the rebuilt files, and the server mends\n" +
			"an account at its next login anyway.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := a.indexAccounts(cmd, args, allRebuild)
			if err != nil {
				return err
			}
			// The queue's lock says whether serve runs; holding it
			// keeps one from starting until the rebuild is done.
			qc, err := queueConfig(a.cfg)
			if err != nil {
				return err
			}
			q, err := queue.Open(qc, nil, nil)
			if errors.Is(err, queue.ErrLocked) {
				return fmt.Errorf("egret serve runs on %s: stop it first, or let each account "+
					"be mended at its next login", a.cfg.Node.DataDir)
			}
			if err != nil {
				return err
			}
			defer q.Close()

			st, err := store.Open(a.mailDir(), a.log)
			if err != nil {
				return err
			}
			defer st.Close()
			for _, id := range ids {
				wrote, err := st.RebuildIndex(cmd.Context(), id)
				if err != nil {
					return err
				}
				if len(wrote) == 0 {
					fmt.Fprintf(a.stdout, "%s ok\n", id)
					continue
				}
				fmt.Fprintf(a.stdout, "%s rebuilt %s\n", id, strings.Join(wrote, " "))
			}
			return nil
		},
	}
	rebuild.Flags().BoolVar(&allRebuild, "all", false, "every account with mail on this node")
	cmd.AddCommand(check, rebuild)
	return cmd
}

// mailDir answers the store's folder.
func (a *app) mailDir() string {
	return filepath.Join(a.cfg.Node.DataDir, "mail")
}

// indexAccounts answers the account ids an index command is about: all
// that have a folder, or the one named by id, address or login.
func (a *app) indexAccounts(cmd *cobra.Command, args []string, all bool) ([]string, error) {
	switch {
	case all && len(args) > 0:
		return nil, errors.New("give an account or --all, not both")
	case all:
		ids, err := store.AccountIDs(a.mailDir())
		slices.Sort(ids)
		return ids, err
	case len(args) == 0:
		return nil, errors.New("give an account (id, address or login) or --all")
	}
	ids, err := store.AccountIDs(a.mailDir())
	if err == nil && slices.Contains(ids, args[0]) {
		return args[:1], nil
	}
	dir, err := a.openStore(cmd.Context())
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	acct, _, err := dir.FindAccount(cmd.Context(), args[0])
	if err != nil {
		return nil, fmt.Errorf("account %q: %w", args[0], err)
	}
	if _, err := os.Stat(filepath.Join(a.mailDir(), "accounts", acct.ID)); err != nil {
		return nil, fmt.Errorf("account %s has no mail on this node: %w", acct.ID, err)
	}
	return []string{acct.ID}, nil
}
