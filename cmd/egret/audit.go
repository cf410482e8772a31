package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/egretair/egret/directory"
)

func (a *app) auditCmd() *cobra.Command {
	var f directory.AuditFilter
	var since, until string
	var all bool
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Print the audit trail: who changed what, when, from what to what",
		Long: "Print changes to the directory, oldest first, one JSON object a line.\n" +
			"Times are RFC 3339 (2026-03-01T08:00:00Z). Without --all, one page is\n" +
			"printed and the --after for the next is said on standard error.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if f.Since, err = parseTimeFlag("since", since); err != nil {
				return err
			}
			if f.Until, err = parseTimeFlag("until", until); err != nil {
				return err
			}
			s, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer s.Close()
			enc := json.NewEncoder(a.stdout)
			enc.SetEscapeHTML(false)
			for {
				entries, next, err := s.Audit(cmd.Context(), f)
				if err != nil {
					return err
				}
				for _, e := range entries {
					if err := enc.Encode(e); err != nil {
						return err
					}
				}
				if next == 0 {
					return nil
				}
				if !all {
					fmt.Fprintf(a.stderr, "more: --after %d\n", next)
					return nil
				}
				f.After = next
			}
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&since, "since", "", "changes at or after this time")
	fl.StringVar(&until, "until", "", "changes before this time")
	fl.StringVar(&f.EntityID, "entity-id", "", "changes of one record (person, account or unit id)")
	fl.StringVar(&f.Unit, "unit", "", "changes of a unit (id or OA id) and of the people in it")
	fl.StringVar(&f.Entity, "entity", "", "one kind of record: unit, post, person, account, group, apikey")
	fl.StringVar(&f.Actor, "actor", "", "changes by one actor (api:NAME, cli:USER, oa:SOURCE)")
	fl.Int64Var(&f.After, "after", 0, "start after this sequence number")
	fl.IntVar(&f.Limit, "limit", 100, "changes a page")
	fl.BoolVar(&all, "all", false, "print every page")
	return cmd
}

func parseTimeFlag(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("--%s %q: want an RFC 3339 time such as 2026-03-01T08:00:00Z", name, v)
	}
	return t, nil
}
