package integration

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// chaosAccount is one mailbox the chaos load sends to and signs in as.
type chaosAccount struct {
	login, address, password string
}

// chaosMessage is one message the load tried to send, under a token of
// its own: a message refused by one front is sent to the other under a
// new token, so a copy the first front queued after all cannot pass
// for a duplicate.
type chaosMessage struct {
	account int
	front   int
	acked   bool
}

// chaosLoad sends mail to both fronts and signs in through them at a
// steady pace. It keeps the fronts' addresses, not their processes, so
// a front restarted on its ports is used again as soon as it answers.
type chaosLoad struct {
	accounts []chaosAccount
	smtp     []string
	imap     []string
	rounds

	mu       sync.Mutex
	msgs     map[string]*chaosMessage
	order    []string // tokens in the order sent
	refusals map[string]int
	acks     []time.Time // 250 answers, in order
	logins   []time.Time // successful sign-ins, in order
	loginErr map[string]int
}

// startChaosLoad sends one message every sendEvery and tries one
// sign-in every probeEvery until stopLoad.
func startChaosLoad(accounts []chaosAccount, fronts []*node, sendEvery, probeEvery time.Duration) *chaosLoad {
	l := &chaosLoad{accounts: accounts,
		msgs: map[string]*chaosMessage{}, refusals: map[string]int{}, loginErr: map[string]int{}}
	for _, f := range fronts {
		l.smtp = append(l.smtp, f.smtpAddr)
		l.imap = append(l.imap, f.imapAddr)
	}
	l.every(sendEvery, l.send)
	l.every(probeEvery, l.probe)
	return l
}

// send sends round k's message to its account through one front, and
// through the other under a new token when the first does not answer
// 250.
func (l *chaosLoad) send(k int) {
	a := k % len(l.accounts)
	for try := range len(l.smtp) {
		f := (k + try) % len(l.smtp)
		token := fmt.Sprintf("chaos-%06d-%d", k, try)
		m := &chaosMessage{account: a, front: f}
		l.mu.Lock()
		l.msgs[token] = m
		l.order = append(l.order, token)
		l.mu.Unlock()

		err := chaosSend(l.smtp[f], l.accounts[a].address, token)
		l.mu.Lock()
		if err == nil {
			m.acked = true
			l.acks = append(l.acks, time.Now())
		} else {
			l.refusals[fmt.Sprintf("front %d: %s", f+1, errClass(err))]++
		}
		l.mu.Unlock()
		if err == nil {
			return
		}
	}
}

// probe signs in as round k's account and selects its INBOX, through
// one front and, when that fails, through the other.
func (l *chaosLoad) probe(k int) {
	a := l.accounts[k%len(l.accounts)]
	for try := range len(l.imap) {
		f := (k + try) % len(l.imap)
		_, err := readInbox(l.imap[f], a.login, a.password, false)
		l.mu.Lock()
		if err == nil {
			l.logins = append(l.logins, time.Now())
		} else {
			kind := strings.Replace(errClass(err), " "+a.login, "", 1)
			l.loginErr[fmt.Sprintf("front %d: %s", f+1, kind)]++
		}
		l.mu.Unlock()
		if err == nil {
			return
		}
	}
}

// errClass shortens an error to its kind, so that a thousand refused
// connections count as one line of the report.
func errClass(err error) string {
	s := err.Error()
	for _, kind := range []string{"connection refused", "i/o timeout", "connection reset", "EOF"} {
		if strings.Contains(s, kind) {
			return kind
		}
	}
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}

// chaosSend sends one message carrying token over SMTP and answers nil
// only for a 250 to its DATA.
func chaosSend(addr, to, token string) error {
	conn, err := net.DialTimeout("tcp", addr, clientDialTimeout)
	if err != nil {
		return err
	}
	conn.SetDeadline(time.Now().Add(clientCallTimeout))
	c := smtp.NewClient(conn)
	defer c.Close()
	msg := fmt.Sprintf("From: <load@remote.example>\r\nTo: <%s>\r\nSubject: chaos %s\r\n"+
		"Message-ID: <%s@remote.example>\r\n%s: %s\r\n\r\nSteady under fire.\r\n",
		to, token, token, tokenHeader, token)
	if err := c.SendMail("load@remote.example", []string{to}, strings.NewReader(msg)); err != nil {
		return err
	}
	c.Quit()
	return nil
}

// loginOutage answers the longest stretch of [from, to] in which no
// sign-in succeeded.
func (l *chaosLoad) loginOutage(from, to time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return longestGap(l.logins, from, to)
}

// mailOutage answers the longest stretch of [from, to] in which no
// message was answered 250.
func (l *chaosLoad) mailOutage(from, to time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return longestGap(l.acks, from, to)
}

// longestGap answers the longest stretch of [from, to] that holds none
// of the times, which are in order.
func longestGap(times []time.Time, from, to time.Time) time.Duration {
	var worst time.Duration
	prev := from
	for _, at := range times {
		if at.Before(from) {
			continue
		}
		if at.After(to) {
			break
		}
		worst = max(worst, at.Sub(prev))
		prev = at
	}
	return max(worst, to.Sub(prev))
}

// ackedBetween counts the messages answered 250 among those sent
// between the marks, which are lengths of the send order.
func (l *chaosLoad) ackedBetween(from, to int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, tok := range l.order[from:to] {
		if l.msgs[tok].acked {
			n++
		}
	}
	return n
}

// mark answers how many messages have been sent so far.
func (l *chaosLoad) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.order)
}

// tally answers counts of kinds of failure as one line to print, each
// as "N × kind".
func tally(counts map[string]int) string {
	var lines []string
	for k, n := range counts {
		lines = append(lines, fmt.Sprintf("%d × %s", n, k))
	}
	slices.Sort(lines)
	if len(lines) == 0 {
		return "none"
	}
	return strings.Join(lines, "; ")
}
