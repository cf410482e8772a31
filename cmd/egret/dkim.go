package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/egretair/egret/mailcore/dkim"
)

func (a *app) dkimCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dkim",
		Short: "Manage the keys that sign outgoing mail",
	}
	var selector, algorithm string
	keygen := &cobra.Command{
		Use:   "keygen DOMAIN",
		Short: "Make a signing key for DOMAIN and print the DNS record to publish",
		Long: "Makes a key in <data_dir>/dkim. Mail from DOMAIN is signed with it " +
			"once the node restarts; publish the printed TXT record first.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := filepath.Join(a.cfg.Node.DataDir, "dkim")
			k, err := dkim.Keygen(dir, args[0], selector, algorithm)
			if err != nil {
				return err
			}
			txt, err := k.TXT()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "key written to %s\n", k.Path)
			fmt.Fprintf(out, "publish this TXT record, then restart egret serve:\n\n")
			fmt.Fprintf(out, "%s. IN TXT %s\n", k.RecordName(), quoteTXT(txt))
			return nil
		},
	}
	keygen.Flags().StringVar(&selector, "selector", dkim.DefaultSelector, "DKIM selector")
	keygen.Flags().StringVar(&algorithm, "algorithm", dkim.RSA, "rsa (RSA-2048) or ed25519")
	cmd.AddCommand(keygen)
	return cmd
}

// quoteTXT writes a TXT value as zone-file strings of at most 255
// bytes each (RFC 1035 §3.3.14), which an RSA-2048 key exceeds.
func quoteTXT(s string) string {
	var out string
	for len(s) > 0 {
		n := min(len(s), 255)
		if out != "" {
			out += " "
		}
		out += `"` + s[:n] + `"`
		s = s[n:]
	}
	return out
}
