package imapd

import (
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/egretair/egret/mailcore"
)

// withSmall adds an account with a quota of 2 KiB.
func withSmall(e *env) {
	small := mailcore.Account{ID: "acct-small", Address: "small@" + domain,
		Login: "small", QuotaBytes: 2048}
	e.dir.byAddress[small.Address] = small
	e.dir.passwords["small"] = "secret-3"
}

func appendMsg(c *imapclient.Client, size int) error {
	body := "Subject: fill\r\n\r\n" + strings.Repeat("x", size-len("Subject: fill\r\n\r\n"))
	cmd := c.Append("INBOX", int64(len(body)), nil)
	cmd.Write([]byte(body))
	cmd.Close()
	_, err := cmd.Wait()
	return err
}

func storage(t *testing.T, c *imapclient.Client, mailbox string) (roots int, used, limit int64) {
	t.Helper()
	data, err := c.GetQuotaRoot(mailbox).Wait()
	if err != nil {
		t.Fatalf("GETQUOTAROOT %s: %v", mailbox, err)
	}
	for _, d := range data {
		r := d.Resources[imap.QuotaResourceStorage]
		used, limit = r.Usage, r.Limit
	}
	return len(data), used, limit
}

func TestQuotaIsReportedAndAppendStopsAtIt(t *testing.T) {
	e := startEnv(t, nil)
	withSmall(e)
	c, err := imapclient.DialInsecure(e.imapAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("small", "secret-3").Wait(); err != nil {
		t.Fatal(err)
	}
	caps, err := c.Capability().Wait()
	if err != nil || !caps.Has("QUOTA") || !caps.Has("QUOTA=RES-STORAGE") {
		t.Errorf("capabilities %v, %v; want QUOTA and QUOTA=RES-STORAGE", caps, err)
	}
	if n, used, limit := storage(t, c, "INBOX"); n != 1 || used != 0 || limit != 2 {
		t.Errorf("empty mailbox: %d roots, STORAGE %d of %d; want 1 root, 0 of 2", n, used, limit)
	}

	if err := appendMsg(c, 1500); err != nil {
		t.Fatalf("APPEND within the quota: %v", err)
	}
	for _, size := range []int{1000, 3000} {
		var ierr *imap.Error
		if err := appendMsg(c, size); !errors.As(err, &ierr) || ierr.Code != imap.ResponseCodeOverQuota {
			t.Errorf("APPEND of %d bytes past the quota: %v, want NO [OVERQUOTA]", size, err)
		}
	}
	if err := c.Create("航班/计划", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if n, used, limit := storage(t, c, "航班/计划"); n != 1 || used != 2 || limit != 2 {
		t.Errorf("after 1500 bytes: %d roots, STORAGE %d of %d; want 1 root, 2 of 2", n, used, limit)
	}
	if _, err := c.GetQuotaRoot("Nowhere").Wait(); err == nil {
		t.Errorf("GETQUOTAROOT of a missing mailbox succeeded")
	}
	q, err := c.GetQuota("").Wait()
	if err != nil || q.Resources[imap.QuotaResourceStorage].Limit != 2 {
		t.Errorf(`GETQUOTA "": %+v, %v`, q, err)
	}
	// A COPY that does not fit is refused as a whole.
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	var ierr *imap.Error
	if _, err := c.Copy(imap.SeqSetNum(1), "Trash").Wait(); !errors.As(err, &ierr) || ierr.Code != imap.ResponseCodeOverQuota {
		t.Errorf("COPY past the quota: %v, want NO [OVERQUOTA]", err)
	}
}

func TestAnAccountWithoutQuotaHasNoQuotaRoot(t *testing.T) {
	e := startEnv(t, nil)
	c := e.login(t, nil)
	if n, _, _ := storage(t, c, "INBOX"); n != 0 {
		t.Errorf("%d quota roots for an account without a quota, want none", n)
	}
}

func TestQuotaCommandsWorkAfterStartTLS(t *testing.T) {
	e := startEnv(t, nil)
	withSmall(e)
	conn, err := net.Dial("tcp", e.imapAddr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := imapclient.NewStartTLS(conn, &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	caps, err := c.Capability().Wait()
	if err != nil || caps.Has(imap.CapStartTLS) {
		t.Errorf("capabilities over TLS %v, %v; want no STARTTLS", caps, err)
	}
	if err := c.Login("small", "secret-3").Wait(); err != nil {
		t.Fatal(err)
	}
	if n, _, limit := storage(t, c, "INBOX"); n != 1 || limit != 2 {
		t.Errorf("over TLS: %d roots, limit %d", n, limit)
	}
}

func TestPlainConnectionsOfferStartTLS(t *testing.T) {
	e := startEnv(t, nil)
	c, err := imapclient.DialInsecure(e.imapAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	caps, err := c.Capability().Wait()
	if err != nil || !caps.Has(imap.CapStartTLS) {
		t.Errorf("capabilities %v, %v; want STARTTLS", caps, err)
	}
}
