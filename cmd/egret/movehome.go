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
// in on both backs as the account and copies every mailbox message by
// message in UID order with its flags and internal date, then once
// more what arrived during that copy. It reads both sides again and
// compares every copied message by flags, date and SHA-256, and only
// then records the new home. Until that write the old back stays the
// home, so a failed move costs a second copy on the new back and
// nothing else; a new run refuses to copy over it until it is emptied.
//
// Mail keeps arriving on the old back for a moment after the switch: a
// front reads the home once per delivery, from the primary, just
// before its LMTP transaction, so a delivery that read it just before
// the write still lands on the old back. Against a back that answers,
// that read and transaction take a few milliseconds, well within a
// second; the command gives such deliveries moveSettle, five times
// that, to land, copying what arrived pass after pass (per mailbox the
// UIDs above the highest copied, and any mailbox made meanwhile) until
// that time is over and a pass finds nothing new. Then it checks every
// message of the old back against its copy; the new back may hold
// more, the mail delivered to it since the switch. Only after that
// check does --remove-old delete on the old back, and only the
// messages that were copied: one that a back slower than moveSettle
// (the fronts give each LMTP step ten seconds) stored after the last
// pass is left there, carried by another round of passes, check and
// removal, and kept on the old back, with an error, if mail keeps
// coming. Without --remove-old nothing looks for such a straggler once
// the command has ended. A failed check keeps the old copy whole and
// fails the command.
//
// Flags a client still connected to the old back changed during the
// move are carried: the last pass reads the flags of every copied
// message again and sets those that changed on the old back since the
// copy on the new one, unless the new copy's flags changed too (a
// client of the new home), in which case the new home's flags stay and
// are not compared. Expunges on the old back during the move are not
// carried: the new back keeps its copy of such a message.

// moveSettle is how long after the switch the command keeps looking
// for mail that a front routed to the old home before it; see above.
const moveSettle = 5 * time.Second

// moveRounds bounds the rounds of passes, check and removal that
// --remove-old makes while mail still shows up on the old back.
const moveRounds = 3

func (a *app) moveHomeCmd() *cobra.Command {
	var removeOld bool
	cmd := &cobra.Command{
		Use:   "move-home ADDRESS BACK",
		Short: "Move an account's mail to another back and make it the home",
		Long: "Copy every mailbox of the account at ADDRESS from its\n" +
			"home back to BACK over IMAP, with flags and internal dates, check that\n" +
			"both copies hold the same messages byte for byte, and then record BACK\n" +
			"as the account's home. Run it on a front: it signs in on both backs\n" +
			"with the proxy login.\n\n" +
			"Mail delivered during the move is carried too: after the switch the\n" +
			"command waits a few seconds for deliveries the fronts had already\n" +
			"routed to the old back, copies whatever arrived there until a pass\n" +
			"finds nothing new, and checks the old back against BACK again. Flags\n" +
			"changed on the old back meanwhile are carried as well. With\n" +
			"--remove-old the copied messages are then deleted on the old back; if\n" +
			"that check fails the old copy is kept and the command fails.\n\n" +
			"Messages get new UIDs on BACK (a new UIDVALIDITY), so the account's\n" +
			"mail clients download the mailboxes once more.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.moveHome(cmd.Context(), args[0], args[1], removeOld)
		},
	}
	cmd.Flags().BoolVar(&removeOld, "remove-old", false,
		"delete the account's mail on the old back once the move is recorded and checked")
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

	// Copy, once more what came meanwhile, then read both sides afresh
	// and compare.
	if n, err := countMessages(newC); err != nil || n != 0 {
		if err == nil {
			err = fmt.Errorf("it holds %d messages already; empty it first", n)
		}
		return fmt.Errorf("move-home: %s on %s: %w", address, to, err)
	}
	st := moveState{}
	copied := 0
	for range 2 {
		n, err := copyNew(oldC, newC, st)
		copied += n
		if err != nil {
			return fmt.Errorf("move-home: %s from %s to %s: %w", address, from, to, err)
		}
	}
	if err := checkCopies(oldC, newC, st, false); err != nil {
		return fmt.Errorf("move-home: %s: the copy on %s does not match: %w", address, to, err)
	}

	// The copy is checked; from here on the new back is the home.
	if err := s.SetHomeNode(ctx, acct.ID, to); err != nil {
		return err
	}
	switched := time.Now()
	log.Info("home node moved", "from", from, "node", to, "messages", copied)
	fmt.Fprintf(a.stdout, "moved %d messages of %s from %s to %s\n", copied, address, from, to)

	for round := 1; ; round++ {
		late, err := copyUntilQuiet(ctx, oldC, newC, st, switched.Add(moveSettle))
		if late > 0 {
			log.Info("mail that arrived on the old home during the move carried",
				"node", from, "messages", late)
			fmt.Fprintf(a.stdout, "carried %d messages that arrived on %s during the move\n", late, from)
		}
		if err == nil {
			err = syncFlags(oldC, newC, st)
		}
		if err == nil {
			err = checkCopies(oldC, newC, st, true)
		}
		if err != nil {
			log.Error("mail on the old home not carried whole", "node", from, "err", err)
			return fmt.Errorf("move-home: %s is homed on %s now, but the old copy on %s is kept: %w",
				address, to, from, err)
		}
		if !removeOld {
			return nil
		}
		left, err := removeCopied(oldC, st)
		if err != nil {
			return fmt.Errorf("move-home: remove the old copy on %s: %w", from, err)
		}
		if left == 0 {
			fmt.Fprintf(a.stdout, "removed the old copy on %s\n", from)
			return nil
		}
		if round == moveRounds {
			return fmt.Errorf("move-home: %s still receives mail for %s: %d messages are kept there",
				from, address, left)
		}
	}
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

// moveState is what a move copied: per mailbox name, its messages.
type moveState map[string]*mailboxCopy

// mailboxCopy is what a move copied of one mailbox.
type mailboxCopy struct {
	// last is the highest UID copied: every message of the old back
	// at or below it was copied, and new ones come above it.
	last imap.UID
	// msgs maps the UID of each copied message on the old back to its
	// copy on the new one.
	msgs map[imap.UID]*copiedMessage
}

// copiedMessage is one message copied to the new back.
type copiedMessage struct {
	uid imap.UID // on the new back
	// flags are those the copy was given, as flagString writes them.
	flags string
	// ownFlags is set once a client of the new back changed the copy's
	// flags: they then stay as they are and are not compared.
	ownFlags bool
}

// copyNew copies every message of from that st does not hold yet,
// creating on to the mailboxes it lacks, records them in st and
// answers how many it copied.
func copyNew(from, to *imapclient.Client, st moveState) (int, error) {
	names, err := mailboxNames(from)
	if err != nil {
		return 0, err
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
		mc := st[name]
		if mc == nil {
			mc = &mailboxCopy{msgs: map[imap.UID]*copiedMessage{}}
			st[name] = mc
		}
		n, err := copyMailbox(from, to, name, mc)
		total += n
		if err != nil {
			return total, fmt.Errorf("mailbox %s: %w", name, err)
		}
	}
	return total, nil
}

// copyMailbox appends each message of one mailbox above mc.last, in
// UID order, so that the new UIDs keep the old order.
func copyMailbox(from, to *imapclient.Client, name string, mc *mailboxCopy) (int, error) {
	if _, err := from.Select(name, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		return 0, err
	}
	var above imap.UIDSet
	above.AddRange(mc.last+1, 0)
	uids, err := from.UIDSearch(&imap.SearchCriteria{UID: []imap.UIDSet{above}}, nil).Wait()
	if err != nil {
		return 0, err
	}
	// "n:*" names the highest UID even when it is below n.
	all := slices.DeleteFunc(uids.AllUIDs(), func(u imap.UID) bool { return u <= mc.last })
	slices.Sort(all)
	for i, uid := range all {
		m, err := fetchOne(from, uid)
		if err != nil {
			return i, err
		}
		body := m.FindBodySection(&imap.FetchItemBodySection{})
		flags := keptFlags(m.Flags)
		app := to.Append(name, int64(len(body)), &imap.AppendOptions{
			Flags: flags,
			Time:  m.InternalDate,
		})
		if _, err := app.Write(body); err != nil {
			return i, err
		}
		if err := app.Close(); err != nil {
			return i, err
		}
		res, err := app.Wait()
		if err != nil {
			return i, fmt.Errorf("append UID %d: %w", uid, err)
		}
		if res.UID == 0 {
			return i, fmt.Errorf("append UID %d: the new back named no UID (APPENDUID)", uid)
		}
		mc.msgs[uid] = &copiedMessage{uid: res.UID, flags: flagString(flags)}
		mc.last = uid
	}
	return len(all), nil
}

// copyUntilQuiet copies what arrives on from until deadline has passed
// and a pass finds nothing new, and answers how many messages it
// copied.
func copyUntilQuiet(ctx context.Context, from, to *imapclient.Client, st moveState, deadline time.Time) (int, error) {
	total := 0
	for {
		n, err := copyNew(from, to, st)
		total += n
		if err != nil || (n == 0 && !time.Now().Before(deadline)) {
			return total, err
		}
		if n == 0 {
			select {
			case <-ctx.Done():
				return total, ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
}

// syncFlags sets on each copy the flags its original has now, where
// they changed on the old back since the copy and the copy's did not.
// A copy whose flags a client changed on the new back keeps them.
func syncFlags(from, to *imapclient.Client, st moveState) error {
	for name, mc := range st {
		if len(mc.msgs) == 0 {
			continue
		}
		var copied, all imap.UIDSet
		copied.AddRange(1, mc.last)
		all.AddRange(1, 0)
		if _, err := from.Select(name, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			return fmt.Errorf("mailbox %s: %w", name, err)
		}
		oldFlags, err := uidFlags(from, copied)
		if err != nil {
			return fmt.Errorf("mailbox %s: %w", name, err)
		}
		if _, err := to.Select(name, nil).Wait(); err != nil {
			return fmt.Errorf("mailbox %s on the new back: %w", name, err)
		}
		newFlags, err := uidFlags(to, all)
		if err != nil {
			return fmt.Errorf("mailbox %s on the new back: %w", name, err)
		}
		for old, m := range mc.msgs {
			now, ok := oldFlags[old]
			if !ok || m.ownFlags {
				continue
			}
			if flagString(newFlags[m.uid]) != m.flags {
				m.ownFlags = true
				continue
			}
			if flagString(now) == m.flags {
				continue
			}
			err := to.Store(imap.UIDSetNum(m.uid), &imap.StoreFlags{
				Op: imap.StoreFlagsSet, Silent: true, Flags: now}, nil).Close()
			if err != nil {
				return fmt.Errorf("mailbox %s: flags of UID %d: %w", name, m.uid, err)
			}
			m.flags = flagString(now)
		}
	}
	return nil
}

// uidFlags answers the flags, without \Recent, of the messages uids of
// the selected mailbox, by UID.
func uidFlags(c *imapclient.Client, uids imap.UIDSet) (map[imap.UID][]imap.Flag, error) {
	msgs, err := c.Fetch(uids, &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil {
		return nil, err
	}
	out := make(map[imap.UID][]imap.Flag, len(msgs))
	for _, m := range msgs {
		out[m.UID] = keptFlags(m.Flags)
	}
	return out, nil
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

// flagString writes flags, as keptFlags answers them, for comparing.
func flagString(flags []imap.Flag) string {
	var fl []string
	for _, f := range flags {
		fl = append(fl, string(f))
	}
	return strings.Join(fl, " ")
}

// digest is what must match between the two copies of a message.
type digest struct {
	sum   [sha256.Size]byte
	flags string
	date  int64
}

// mailboxDigests reads one mailbox's messages, by UID.
func mailboxDigests(c *imapclient.Client, name string) (map[imap.UID]digest, error) {
	sel, err := c.Select(name, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return nil, err
	}
	out := map[imap.UID]digest{}
	if sel.NumMessages == 0 {
		return out, nil
	}
	uids, err := c.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
	if err != nil {
		return nil, err
	}
	for _, uid := range uids.AllUIDs() {
		m, err := fetchOne(c, uid)
		if err != nil {
			return nil, err
		}
		out[uid] = digest{
			sum:   sha256.Sum256(m.FindBodySection(&imap.FetchItemBodySection{})),
			flags: flagString(keptFlags(m.Flags)),
			date:  m.InternalDate.Unix(),
		}
	}
	return out, nil
}

// checkCopies reads every mailbox of from and its namesake on to, and
// compares each message of from with its copy: bytes, date and flags
// (but those of a copy with flags of its own). Before the switch
// (final false) a message or mailbox not copied yet is passed over,
// and to must hold the copies and nothing else; after it (final) every message of
// from must have its copy, and to may hold more: mail delivered to it
// as the new home.
func checkCopies(from, to *imapclient.Client, st moveState, final bool) error {
	names, err := mailboxNames(from)
	if err != nil {
		return err
	}
	for _, name := range names {
		mc := st[name]
		if mc == nil {
			if final {
				return fmt.Errorf("mailbox %s was not copied", name)
			}
			continue
		}
		da, err := mailboxDigests(from, name)
		if err != nil {
			return fmt.Errorf("mailbox %s: %w", name, err)
		}
		db, err := mailboxDigests(to, name)
		if err != nil {
			return fmt.Errorf("mailbox %s: %w", name, err)
		}
		if !final && len(db) != len(mc.msgs) {
			return fmt.Errorf("mailbox %s: %d messages, want %d", name, len(db), len(mc.msgs))
		}
		for uid, a := range da {
			m := mc.msgs[uid]
			if m == nil {
				if final {
					return fmt.Errorf("mailbox %s: UID %d was not copied", name, uid)
				}
				continue
			}
			b, ok := db[m.uid]
			switch {
			case !ok:
				return fmt.Errorf("mailbox %s: the copy of UID %d is gone", name, uid)
			case !bytes.Equal(a.sum[:], b.sum[:]):
				return fmt.Errorf("mailbox %s: the copy of UID %d differs", name, uid)
			case a.flags != b.flags && !m.ownFlags:
				return fmt.Errorf("mailbox %s: the copy of UID %d has flags %q, want %q",
					name, uid, b.flags, a.flags)
			case a.date != b.date:
				return fmt.Errorf("mailbox %s: the copy of UID %d has another date", name, uid)
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

// removeCopied deletes on from the messages st copied and answers how
// many messages are left: those that arrived after the last pass. When
// none is, it deletes every mailbox but INBOX too, children before
// parents.
func removeCopied(from *imapclient.Client, st moveState) (int, error) {
	for name, mc := range st {
		if len(mc.msgs) == 0 {
			continue
		}
		if _, err := from.Select(name, nil).Wait(); err != nil {
			return 0, fmt.Errorf("mailbox %s: %w", name, err)
		}
		// Every message at or below last was copied.
		var copied imap.UIDSet
		copied.AddRange(1, mc.last)
		err := from.Store(copied, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true,
			Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close()
		if err != nil {
			return 0, fmt.Errorf("mailbox %s: %w", name, err)
		}
		if err := from.UIDExpunge(copied).Close(); err != nil {
			return 0, fmt.Errorf("mailbox %s: %w", name, err)
		}
	}
	names, err := mailboxNames(from)
	if err != nil {
		return 0, err
	}
	left := 0
	var empty []string
	for _, name := range names {
		sel, err := from.Select(name, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			return 0, fmt.Errorf("mailbox %s: %w", name, err)
		}
		left += int(sel.NumMessages)
		if sel.NumMessages == 0 && !strings.EqualFold(name, "INBOX") {
			empty = append(empty, name)
		}
	}
	if left > 0 {
		// Another round comes, or the mail stays where it is.
		return left, nil
	}
	// A mailbox that is selected is not deleted.
	if _, err := from.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		return 0, err
	}
	for _, name := range slices.Backward(empty) {
		if err := from.Delete(name).Wait(); err != nil {
			return 0, fmt.Errorf("delete %s: %w", name, err)
		}
	}
	return left, nil
}
