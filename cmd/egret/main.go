// Command egret is the identity and directory-sync hub with its mail
// engine: one binary whose subcommands serve, migrate the database, import
// the OA's org export and manage users. This package only wires the
// others together.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"os/user"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/sso/guard"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// app carries what every subcommand shares.
type app struct {
	configFile string
	cfg        Config
	log        *slog.Logger
	stdout     io.Writer
	stderr     io.Writer
	stdin      io.Reader

	// signinGuard is the one login guard of a serving process, shared
	// by the web mailbox, the OIDC login page and the mail servers.
	signinGuard *guard.Guard
}

func main() {
	a := &app{stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx = directory.WithActor(ctx, "cli:"+osUser())
	defer stop()
	if err := a.root().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "egret:", err)
		os.Exit(1)
	}
}

func (a *app) root() *cobra.Command {
	root := &cobra.Command{
		Use:           "egret",
		Short:         "Identity and directory-sync hub with a mail engine",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(configPath(a.configFile), os.Environ())
			if err != nil {
				return err
			}
			a.cfg = cfg
			a.log = newLogger(cfg.Log, a.stderr)
			slog.SetDefault(a.log)
			for _, name := range unknownEnv(os.Environ()) {
				a.log.Warn("environment variable sets no configuration key", slog.String("variable", name))
			}
			return nil
		},
	}
	root.PersistentFlags().StringVar(&a.configFile, "config", "",
		"TOML configuration file (also EGRET_CONFIG)")
	root.AddCommand(
		a.serveCmd(),
		a.migrateCmd(),
		a.oaCmd(),
		a.userCmd(),
		a.accountCmd(),
		a.apikeyCmd(),
		a.oidcCmd(),
		a.ssoCmd(),
		a.auditCmd(),
		a.queueCmd(),
		a.indexCmd(),
		a.dkimCmd(),
		a.ldapCmd(),
		a.statusCmd(),
		a.versionCmd(),
	)
	return root
}

// newLogger makes the process logger: JSON unless told otherwise or
// writing to a terminal.
func newLogger(c LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Level)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	format := strings.ToLower(c.Format)
	if format == "" {
		format = "json"
		if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			format = "text"
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// openStore opens the directory and applies the migrations it lacks.
// In a cluster it names the backs new accounts are homed on.
func (a *app) openStore(ctx context.Context) (*directory.Store, error) {
	s, err := directory.Open(ctx, a.cfg.Database.URL, a.databaseOptions()...)
	if err != nil {
		return nil, err
	}
	if err := a.setHomeBacks(s); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// withStore runs fn, a command's work, on the directory opened for it,
// and closes the directory after.
func (a *app) withStore(cmd *cobra.Command, fn func(s *directory.Store) error) error {
	s, err := a.openStore(cmd.Context())
	if err != nil {
		return err
	}
	defer s.Close()
	return fn(s)
}

// databaseOptions names the replicas of the directory's database.
func (a *app) databaseOptions() []directory.Option {
	return []directory.Option{
		directory.WithReplicas(a.cfg.Database.replicaURLs()...),
		directory.WithMaxReplicaLag(a.cfg.Database.MaxReplicaLag),
	}
}

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print egret's version",
		Args:  cobra.NoArgs,
		// Printing the version needs no configuration.
		PersistentPreRunE: func(*cobra.Command, []string) error { return nil },
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := fmt.Fprintf(a.stdout, "egret %s\n", buildVersion())
			return err
		},
	}
}

// errExit is answered by a command that has already said what went wrong
// and only needs the process to exit non-zero.
var errExit = errors.New("failed")

// osUser names the operating-system user running the command, for the
// change log.
func osUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return strconv.Itoa(os.Getuid())
}

// buildVersion answers the version set at link time, else what the Go
// toolchain recorded: the module version of `go install`, or the commit
// of a build from a checkout.
func buildVersion() string {
	if version != "dev" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return version
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, kv := range info.Settings {
		switch kv.Key {
		case "vcs.revision":
			rev = kv.Value
		case "vcs.modified":
			dirty = kv.Value == "true"
		}
	}
	if rev == "" {
		return version
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-modified"
	}
	return version + "+" + rev
}
