package main

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/egretair/egret/directory"
)

func (a *app) userCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Manage users' mail accounts",
	}
	var fromStdin bool
	passwd := &cobra.Command{
		Use:   "passwd USER",
		Short: "Set the mail password of USER (login, address or account id)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pw, err := a.readPassword(fromStdin)
			if err != nil {
				return err
			}
			s, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer s.Close()
			acct, err := s.SetPassword(cmd.Context(), args[0], pw)
			if err != nil {
				return fmt.Errorf("user %s: %w", args[0], err)
			}
			a.log.Info("password changed", slog.String("account", acct.ID), slog.String("via", "cli"))
			fmt.Fprintf(a.stdout, "password set for %s\n", acct.Address)
			if acct.Status != directory.AccountEnabled {
				fmt.Fprintf(a.stdout, "note: the account is %s; it cannot log in until it is enabled\n", acct.Status)
			}
			return nil
		},
	}
	passwd.Flags().BoolVar(&fromStdin, "password-stdin", false,
		"read the password from the first line of standard input")
	cmd.AddCommand(passwd)
	return cmd
}

// readPassword reads the new password from standard input, or asks for it
// twice on the terminal.
func (a *app) readPassword(fromStdin bool) (string, error) {
	f, isFile := a.stdin.(*os.File)
	if fromStdin || !isFile || !term.IsTerminal(int(f.Fd())) {
		line, err := bufio.NewReader(a.stdin).ReadString('\n')
		if err != nil && line == "" {
			return "", errors.New("no password on standard input")
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	fmt.Fprint(a.stderr, "New password: ")
	p1, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(a.stderr)
	if err != nil {
		return "", err
	}
	fmt.Fprint(a.stderr, "Again: ")
	p2, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(a.stderr)
	if err != nil {
		return "", err
	}
	if string(p1) != string(p2) {
		return "", errors.New("the two passwords differ")
	}
	return string(p1), nil
}
