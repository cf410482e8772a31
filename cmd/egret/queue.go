package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/egretair/egret/mailcore/queue"
)

// queueCommandWait bounds the wait for a running server to take a
// command handed over through the queue's control folder.
const queueCommandWait = 15 * time.Second

// queueConfig answers the queue's configuration from egret's.
func queueConfig(cfg Config) (queue.Config, error) {
	retry, err := queue.ParseRetry(cfg.Queue.RetrySchedule)
	if err != nil {
		return queue.Config{}, err
	}
	return queue.Config{
		Dir:         filepath.Join(cfg.Node.DataDir, "queue"),
		Workers:     cfg.Queue.Workers,
		Retry:       retry,
		GiveUpAfter: cfg.Queue.GiveUpAfter,
		DelayNotice: delayNotice(cfg.Queue.DelayNoticeAfter),
	}, nil
}

// delayNotice answers the queue's DelayNotice for the configured value,
// where 0 means no delay notices and the queue's zero means 4 hours.
func delayNotice(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// openQueue opens the node's queue for serving.
func openQueue(cfg Config, t queue.Transport, log *slog.Logger) (*queue.Queue, error) {
	qc, err := queueConfig(cfg)
	if err != nil {
		return nil, err
	}
	q, err := queue.Open(qc, t, log)
	if errors.Is(err, queue.ErrLocked) {
		return nil, fmt.Errorf("%w: is another egret serving %s?", err, cfg.Node.DataDir)
	}
	return q, err
}

// lmtpAddress answers where the LMTP server listens and the queue
// connects: the configured address, or a socket in the data folder.
func lmtpAddress(cfg Config) string {
	if cfg.LMTP.Addr != "" {
		return cfg.LMTP.Addr
	}
	return "unix:" + filepath.Join(cfg.Node.DataDir, "lmtp.sock")
}

// listenLMTP binds the LMTP address. A socket file left by a killed
// process is removed first; the caller holds the queue's lock, so no
// live process owns it.
func listenLMTP(addr string) (net.Listener, error) {
	path, ok := strings.CutPrefix(addr, "unix:")
	if !ok {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("lmtp listener: %w", err)
		}
		return ln, nil
	}
	// sun_path holds 108 bytes with its final NUL (unix(7)).
	if len(path) > 107 {
		return nil, fmt.Errorf("lmtp listener: socket path %s is longer than 107 bytes; set lmtp.addr", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("lmtp listener: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("lmtp listener: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("lmtp listener: %w", err)
	}
	return ln, nil
}

func (a *app) queueCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "queue",
		Short: "Inspect and steer the delivery queue",
		Long: `Inspect and steer the delivery queue in <data_dir>/queue.

list and show read the queue's records and are safe at any time. hold,
release, retry and delete act on the files when no server runs; while
egret serve runs they are handed to it through the queue's control
folder and applied within a second.`,
	}
	cmd.AddCommand(
		&cobra.Command{
			Use:   "list",
			Short: "List queued messages",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				return a.queueList()
			},
		},
		&cobra.Command{
			Use:   "show ID",
			Short: "Show a queued message's envelope and recipients",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return a.queueShow(args[0])
			},
		},
	)
	for _, c := range []struct {
		op    queue.Op
		short string
	}{
		{queue.OpRetry, "Try deferred and failed recipients now"},
		{queue.OpHold, "Stop delivery attempts for a message"},
		{queue.OpRelease, "Let a held message be delivered again"},
		{queue.OpDelete, "Remove a message from the queue for good"},
	} {
		op := c.op
		cmd.AddCommand(&cobra.Command{
			Use:   string(op) + " ID",
			Short: c.short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return a.queueOp(cmd.Context(), op, args[0])
			},
		})
	}
	return cmd
}

func (a *app) queueDir() string {
	return filepath.Join(a.cfg.Node.DataDir, "queue")
}

func (a *app) queueList() error {
	recs, err := queue.ReadRecords(a.queueDir())
	if errors.Is(err, os.ErrNotExist) {
		recs, err = nil, nil
	}
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tRECEIVED\tSIZE\tSTATE\tNEXT\tFROM")
	for _, r := range recs {
		state, next := summary(r)
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t<%s>\n", r.ID,
			r.Received.Local().Format(time.DateTime), r.Size, state, next, r.From)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(a.stdout, "%d messages\n", len(recs))
	return err
}

// summary counts a record's recipients by state, and answers the next
// attempt's time.
func summary(r queue.Record) (string, string) {
	counts := map[queue.State]int{}
	var next time.Time
	for _, rc := range r.Recipients {
		counts[rc.State]++
		if rc.State == queue.Deferred && (next.IsZero() || rc.Next.Before(next)) {
			next = rc.Next
		}
	}
	var parts []string
	if r.Held {
		parts = append(parts, "held")
	}
	for _, s := range []queue.State{queue.Pending, queue.Deferred, queue.Failed, queue.Delivered} {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%s:%d", s, counts[s]))
		}
	}
	n := "-"
	if !next.IsZero() {
		n = next.Local().Format(time.DateTime)
	}
	return strings.Join(parts, ","), n
}

func (a *app) queueShow(id string) error {
	r, err := queue.ReadRecord(a.queueDir(), id)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "id:\t%s\n", r.ID)
	fmt.Fprintf(w, "from:\t<%s>\n", r.From)
	fmt.Fprintf(w, "received:\t%s\n", r.Received.Local().Format(time.RFC3339))
	fmt.Fprintf(w, "expires:\t%s\n", r.Expires.Local().Format(time.RFC3339))
	fmt.Fprintf(w, "size:\t%d\n", r.Size)
	fmt.Fprintf(w, "sha256:\t%s\n", r.SHA256)
	fmt.Fprintf(w, "held:\t%t\n", r.Held)
	fmt.Fprintln(w, "\nRECIPIENT\tACCOUNT\tSTATE\tATTEMPTS\tNEXT\tREPLY")
	for _, rc := range r.Recipients {
		next := "-"
		if !rc.Next.IsZero() {
			next = rc.Next.Local().Format(time.DateTime)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\n", rc.Address, rc.Account,
			rc.State, rc.Attempts, next, rc.Reply)
	}
	return w.Flush()
}

func (a *app) queueOp(ctx context.Context, op queue.Op, id string) error {
	qc, err := queueConfig(a.cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, queueCommandWait)
	defer cancel()
	done, err := queue.Command(ctx, qc, op, id)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(a.stdout, "%s: %s\n", id, done)
	return err
}
