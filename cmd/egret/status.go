package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/directory/ldapmirror"
)

func (a *app) statusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the databases, the LDAP mirror's lag and every node's services",
		Long: "Show each directory database (database.url and database.replicas):\n" +
			"whether it answers, a replica's lag, and which one serves reads and\n" +
			"writes, checked now from this machine. Then the change log's head,\n" +
			"the LDAP mirror's cursor, and how far behind it is in rows and in\n" +
			"time, read from the database, so it answers while LDAP or serve is\n" +
			"down. Then each node's heartbeat, once however often it is listed:\n" +
			"this node's (at http.addr) and those in cluster.nodes, with role,\n" +
			"address, uptime, each service's state and restart count, a back's\n" +
			"lease (active or standby, fence, holder), the queue, and a front's\n" +
			"breakers: each back member with its node name where known, and the\n" +
			"lease it last reported (\"last seen\" while its breaker is not closed).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			health, err := directory.Probe(a.cfg.Database.URL, a.databaseOptions()...)
			if err != nil {
				return err
			}
			printDatabases(a.stdout, health)
			if !health[0].Up {
				// The mirror's lag lives on the primary; the nodes
				// are still worth showing.
				fmt.Fprintf(a.stdout, "ldap mirror       unknown: the primary database is down\n")
				a.printCluster(cmd.Context(), a.stdout)
				return nil
			}

			// A report changes nothing: no migrations, no wait on
			// another node's.
			s, err := directory.Connect(a.cfg.Database.URL, a.databaseOptions()...)
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

// printDatabases writes one line per database: name, address, state,
// a replica's lag, and what it serves.
func printDatabases(w io.Writer, health []directory.DatabaseHealth) {
	for _, h := range health {
		state := "up"
		switch {
		case !h.Up:
			state = "down"
		case h.Behind:
			state = "behind"
		}
		line := fmt.Sprintf("database %-9s %-21s %-6s", h.Name, h.Addr, state)
		if h.Role == directory.RoleReplica && h.LagSeconds >= 0 {
			line += fmt.Sprintf(" lag %.0fs", h.LagSeconds)
		}
		var serves string
		if h.ServesWrites {
			serves += " writes"
		}
		if h.ServesReads {
			serves += " reads"
		}
		if serves != "" {
			line += "  serves" + serves
		}
		if h.Error != "" && (!h.Up || h.Behind) {
			line += "  (" + h.Error + ")"
		}
		fmt.Fprintln(w, line)
	}
}
