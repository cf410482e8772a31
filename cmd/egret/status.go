package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/egretair/egret/directory/ldapmirror"
)

func (a *app) statusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the LDAP mirror's lag and every node's services",
		Long: "Show the change log's head, the LDAP mirror's cursor, and how far\n" +
			"behind it is in rows and in time, read from the database, so it\n" +
			"answers while LDAP or serve is down. Then show each node's heartbeat:\n" +
			"this node's (at http.addr) and those listed in cluster.nodes, with\n" +
			"role, address, uptime, each service's state and restart count, the\n" +
			"breakers and the queue.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer s.Close()
			lag, err := ldapmirror.Status(cmd.Context(), s)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "change log head   %d\n", lag.Head)
			switch {
			case a.cfg.LDAP.URL == "":
				fmt.Fprintf(a.stdout, "ldap mirror       off (ldap.url is not set)\n")
			case !lag.Started:
				fmt.Fprintf(a.stdout, "ldap mirror       not started: no full pass yet\n")
			default:
				fmt.Fprintf(a.stdout, "ldap mirror       cursor %d, %d rows behind", lag.Cursor, lag.Rows)
				if lag.Rows > 0 {
					fmt.Fprintf(a.stdout, ", oldest waiting %s",
						(time.Duration(lag.Seconds * float64(time.Second))).Round(time.Millisecond))
				}
				fmt.Fprintln(a.stdout)
			}
			a.printCluster(cmd.Context(), a.stdout)
			return nil
		},
	}
}
