package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/spf13/cobra"
)

// Moving a home. Each back keeps its store in a folder of its own
// machine, so the move goes over IMAP, as the fronts' proxy: it signs
// in on both backs as the account, copies every mailbox message by
// message in UID order with its flags and internal date, reads both
// sides again and compares them by count, flags and SHA-256 of each
// message, and only then records the new home. Until that write the
// old back stays the home, so a failed move costs a second copy on the
// new back and nothing else; a new run refuses to copy over it until
// it is emptied.
//
// Not yet: mail delivered to the account during the copy lands on the
// old back and is not carried over. The command counts the old back's
// messages again after the switch and says how many arrived; moving
// when the account is quiet avoids it.

func (a *app) moveHomeCmd() *cobra.Command {
	var removeOld bool
	cmd := &cobra.Command{
		Use:   "move-home ACCOUNT BACK",
		Short: "Move an account's mail to another back and make it the home",
		Long: "Copy every mailbox of the account (named by its address) from its\n" +
			"home back to BACK over IMAP, with flags and internal dates, check that\n" +
			"both copies hold the same messages byte for byte, and then record BACK\n" +
			"as the account's home. Run it on a front: it signs in on both backs\n" +
			"with the proxy login. With --remove-old the old copy is deleted after\n" +
			"the switch.\n\n" +
			"Messages get new UIDs on BACK (a new UIDVALIDITY), so the account's\n" +
			"mail clients download the mailboxes once more. Mail delivered during\n" +
			"the copy stays on the old back: move when the account is quiet.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.moveHome(cmd.Context(), args[0], args[1], removeOld)
		},
	}
	cmd.Flags().BoolVar(&removeOld, "remove-old", false,
		"delete the account's mail on the old back once the move is recorded")
	return cmd
}

// moveHome moves the account at address to the back named to.
func (a *app) moveHome(ctx context.Context, address, to string, removeOld bool) error {
	if a.cfg.Node.Role != "front" {
		return fmt.Errorf("move-home: run it on a front (node.role is %q)", a.cfg.Node.Role)
	}
	backs, err := a.cfg.clusterBacks()
	if err != nil {
		return err
	}
	members, err := a.cfg.clusterMembers()
	if err != nil {
		return err
	}
	h := &homes{backs: backs, members: members}
	dst, ok := h.back(to)
	if !ok {
		return fmt.Errorf("move-home: no back named %q in cluster.backs", to)
	}
	s, err := a.openStore(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	acct, err := s.LookupAddress(ctx, address)
	if err != nil {
		return fmt.Errorf("move-home: account %s: %w", address, err)
	}
	from, err := s.PrimaryHomeNode(ctx, acct.ID)
	if err != nil {
		return err
	}
	log := a.log.With(slog.String("account", acct.ID))

	// No home yet means no mail yet: recording one is the whole move.
	if from == "" {
		got, err := s.ClaimHomeNode(ctx, acct.ID, to)
		if err != nil {
			return err
		}
		if got != to {
			return fmt.Errorf("move-home: %s was homed on %s meanwhile; run again", address, got)
		}
		fmt.Fprintf(a.stdout, "%s had no mail yet; home is now %s\n", address, to)
		return nil
	}
	if from == to {
		return fmt.Errorf("move-home: %s is homed on %s already", address, to)
	}
	src, ok := h.back(from)
	if !ok {
		return fmt.Errorf("move-home: home %q of %s is not in cluster.backs", from, address)
	}

	oldC, err := a.backSession(src, acct.Address)
	if err != nil {
		return err
	}
	defer oldC.Close()
	newC, err := a.backSession(dst, acct.Address)
	if err != nil {
		return err
	}
	defer newC.Close()

	// Copy, then read both sides afresh and compare.
	copied, err := copyMailboxes(oldC, newC)
	if err != nil {
		return fmt.Errorf("move-home: %s from %s to %s: %w", address, from, to, err)
	}
	if err := sameMailboxes(oldC, newC); err != nil {
		return fmt.Errorf("move-home: %s: the copy on %s does not match: %w", address, to, err)
	}

	// The copy is checked; from here on the new back is the home.
	if err := s.SetHomeNode(ctx, acct.ID, to); err != nil {
		return err
	}
	log.Info("home node moved", "from", from, "node", to, "messages", copied)
	fmt.Fprintf(a.stdout, "moved %d messages of %s from %s to %s\n", copied, address, from, to)

	// Deliveries that reached the old back during the copy show up as
	// a count that grew.
	after, err := countMessages(oldC)
	if err != nil {
		return fmt.Errorf("move-home: recount on %s: %w", from, err)
	}
	if after != copied {
		log.Warn("mail arrived on the old home during the move", "node", from,
			"copied", copied, "now", after)
		fmt.Fprintf(a.stdout, "%s now holds %d messages, %d were copied; the old copy is kept\n",
			from, after, copied)
		return nil
	}
	if removeOld {
		if err := emptyMailboxes(oldC); err != nil {
			return fmt.Errorf("move-home: remove the old copy on %s: %w", from, err)
		}
		fmt.Fprintf(a.stdout, "removed the old copy on %s\n", from)
	}
	return nil
}

// backSession signs in on a back as the account at address, with the
// fronts' proxy login (see imapd.ProxyLogin).
func (a *app) backSession(b backNode, address string) (*imapclient.Client, error) {
	conn, err := net.DialTimeout("tcp", b.IMAP, 10*time.Second)
	if err != nil {
		return nil, fmt.Errorf("move-home: back %s: %w", b.Name, err)
	}
	c := imapclient.New(conn, nil)
	if err := c.WaitGreeting(); err != nil {
		c.Close()
		return nil, fmt.Errorf("move-home: back %s: %w", b.Name, err)
	}
	auth := sasl.NewPlainClient(address, proxyIdentity, a.cfg.Cluster.ProxySecret)
	if err := c.Authenticate(auth); err != nil {
		c.Close()
		return nil, fmt.Errorf("move-home: proxy login on %s: %w", b.Name, err)
	}
	return c, nil
}

// mailboxNames lists the selectable mailboxes, parents before children.
func mailboxNames(c *imapclient.Client) ([]string, error) {
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, l := range list {
		if !slices.Contains(l.Attrs, imap.MailboxAttrNoSelect) {
			names = append(names, l.Mailbox)
		}
	}
	slices.Sort(names)
	return names, nil
}

// copyMailboxes copies every mailbox of from into to, which must hold
// no messages, and answers how many messages it copied.
func copyMailboxes(from, to *imapclient.Client) (int, error) {
	names, err := mailboxNames(from)
	if err != nil {
		return 0, err
	}
	if n, err := countMessages(to); err != nil || n != 0 {
		if err == nil {
			err = fmt.Errorf("it holds %d messages already; empty it first", n)
		}
		return 0, fmt.Errorf("new home: %w", err)
	}
	have, err := mailboxNames(to)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, name := range names {
		if !slices.Contains(have, name) {
			if err := to.Create(name, nil).Wait(); err != nil {
				return total, fmt.Errorf("create %s: %w", name, err)
			}
		}
		n, err := copyMailbox(from, to, name)
		total += n
		if err != nil {
			return total, fmt.Errorf("mailbox %s: %w", name, err)
		}
	}
	return total, nil
}

// copyMailbox appends each message of one mailbox, in UID order, so
// that the new UIDs keep the old order.
func copyMailbox(from, to *imapclient.Client, name string) (int, error) {
	if _, err := from.Select(name, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		return 0, err
	}
	uids, err := from.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
	if err != nil {
		return 0, err
	}
	all := uids.AllUIDs()
	slices.Sort(all)
	for i, uid := range all {
		m, err := fetchOne(from, uid)
		if err != nil {
			return i, err
		}
		body := m.FindBodySection(&imap.FetchItemBodySection{})
		app := to.Append(name, int64(len(body)), &imap.AppendOptions{
			Flags: keptFlags(m.Flags),
			Time:  m.InternalDate,
		})
		if _, err := app.Write(body); err != nil {
			return i, err
		}
		if err := app.Close(); err != nil {
			return i, err
		}
		if _, err := app.Wait(); err != nil {
			return i, fmt.Errorf("append UID %d: %w", uid, err)
		}
	}
	return len(all), nil
}

// fetchOne reads one message whole with its flags and date.
func fetchOne(c *imapclient.Client, uid imap.UID) (*imapclient.FetchMessageBuffer, error) {
	msgs, err := c.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{
		UID:          true,
		Flags:        true,
		InternalDate: true,
		BodySection:  []*imap.FetchItemBodySection{{Peek: true}},
	}).Collect()
	if err != nil {
		return nil, fmt.Errorf("fetch UID %d: %w", uid, err)
	}
	if len(msgs) != 1 {
		return nil, fmt.Errorf("fetch UID %d: %d messages answered", uid, len(msgs))
	}
	return msgs[0], nil
}

// keptFlags drops \Recent, which a client may not set (RFC 9051 §2.3.2).
func keptFlags(flags []imap.Flag) []imap.Flag {
	var out []imap.Flag
	for _, f := range flags {
		if !strings.EqualFold(string(f), `\Recent`) {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return out
}

// digest is what must match between the two copies of a message.
type digest struct {
	sum   [sha256.Size]byte
	flags string
	date  int64
}

// mailboxDigests reads one mailbox's messages in UID order.
func mailboxDigests(c *imapclient.Client, name string) ([]digest, error) {
	sel, err := c.Select(name, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return nil, err
	}
	if sel.NumMessages == 0 {
		return nil, nil
	}
	uids, err := c.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
	if err != nil {
		return nil, err
	}
	all := uids.AllUIDs()
	slices.Sort(all)
	var out []digest
	for _, uid := range all {
		m, err := fetchOne(c, uid)
		if err != nil {
			return nil, err
		}
		var fl []string
		for _, f := range keptFlags(m.Flags) {
			fl = append(fl, string(f))
		}
		out = append(out, digest{
			sum:   sha256.Sum256(m.FindBodySection(&imap.FetchItemBodySection{})),
			flags: strings.Join(fl, " "),
			date:  m.InternalDate.Unix(),
		})
	}
	return out, nil
}

// sameMailboxes compares every mailbox of a with its namesake on b.
func sameMailboxes(a, b *imapclient.Client) error {
	names, err := mailboxNames(a)
	if err != nil {
		return err
	}
	for _, name := range names {
		da, err := mailboxDigests(a, name)
		if err != nil {
			return fmt.Errorf("mailbox %s: %w", name, err)
		}
		db, err := mailboxDigests(b, name)
		if err != nil {
			return fmt.Errorf("mailbox %s: %w", name, err)
		}
		if len(da) != len(db) {
			return fmt.Errorf("mailbox %s: %d messages, want %d", name, len(db), len(da))
		}
		for i := range da {
			switch {
			case !bytes.Equal(da[i].sum[:], db[i].sum[:]):
				return fmt.Errorf("mailbox %s: message %d differs", name, i+1)
			case da[i].flags != db[i].flags:
				return fmt.Errorf("mailbox %s: message %d has flags %q, want %q",
					name, i+1, db[i].flags, da[i].flags)
			case da[i].date != db[i].date:
				return fmt.Errorf("mailbox %s: message %d has another date", name, i+1)
			}
		}
	}
	return nil
}

// countMessages answers how many messages all mailboxes hold.
func countMessages(c *imapclient.Client) (int, error) {
	names, err := mailboxNames(c)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, name := range names {
		sel, err := c.Select(name, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			return 0, fmt.Errorf("mailbox %s: %w", name, err)
		}
		total += int(sel.NumMessages)
	}
	return total, nil
}

// emptyMailboxes deletes every message, and every mailbox but INBOX,
// children before parents.
func emptyMailboxes(c *imapclient.Client) error {
	names, err := mailboxNames(c)
	if err != nil {
		return err
	}
	for _, name := range names {
		sel, err := c.Select(name, nil).Wait()
		if err != nil {
			return fmt.Errorf("mailbox %s: %w", name, err)
		}
		if sel.NumMessages == 0 {
			continue
		}
		all := imap.SeqSet{}
		all.AddRange(1, 0)
		err = c.Store(all, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true,
			Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close()
		if err != nil {
			return fmt.Errorf("mailbox %s: %w", name, err)
		}
		if err := c.Expunge().Close(); err != nil {
			return fmt.Errorf("mailbox %s: %w", name, err)
		}
	}
	// A mailbox that is selected is not deleted.
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		return err
	}
	for _, name := range slices.Backward(names) {
		if strings.EqualFold(name, "INBOX") {
			continue
		}
		if err := c.Delete(name).Wait(); err != nil {
			return fmt.Errorf("delete %s: %w", name, err)
		}
	}
	return nil
}
