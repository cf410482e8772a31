package integration

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"

	"github.com/egretair/egret/directory/dirtest"
)

// tracker counts every request made to it: a message's remote image or
// script pointing here must never be fetched.
func tracker(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String(), &hits
}

// loginLink asks the API for a login link as the OA does.
func loginLink(t *testing.T, n *node, user, returnPath string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"user": user, "return_path": returnPath})
	status, resp, err := n.api(http.MethodPost, "/api/v1/sso/tokens", body)
	if err != nil || status != http.StatusCreated {
		t.Fatalf("POST /api/v1/sso/tokens: %d %v %s", status, err, resp)
	}
	var out struct {
		Token     string `json:"token"`
		LoginURL  string `json:"login_url"`
		ExpiresAt string `json:"expires_at"`
	}
	if err := json.Unmarshal(resp, &out); err != nil || out.Token == "" || out.ExpiresAt == "" {
		t.Fatalf("token answer: %v %s", err, resp)
	}
	if !strings.HasPrefix(out.LoginURL, "http://"+n.httpAddr+"/mail/sso?t=") {
		t.Fatalf("login_url %q is not on the node", out.LoginURL)
	}
	return out.LoginURL
}

// deliver sends one message to address over the node's SMTP port.
func deliver(t *testing.T, n *node, address, msg string) {
	t.Helper()
	c, err := smtp.Dial(n.smtpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SendMail("ops@remote.example", []string{address}, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	c.Quit()
}

// open follows a link in the browser and answers the text of the page
// it settles on, after the hand-off form has been sent.
func open(t *testing.T, ctx context.Context, link string) (string, string) {
	t.Helper()
	c, cancel := within(ctx)
	defer cancel()
	err := chromedp.Do(c,
		chromedp.Navigate(link),
		chromedp.WaitReady(chromedp.CSS("main")))
	if err == nil {
		_, err = chromedp.Run(c, chromedp.Poll[bool](`!document.getElementById("go")`,
			chromedp.WithPollingTimeout(20*time.Second)))
	}
	if err == nil {
		err = chromedp.Do(c, chromedp.WaitReady(chromedp.CSS("main")))
	}
	loc, lerr := chromedp.Run(c, chromedp.Location())
	if err != nil || lerr != nil {
		t.Fatalf("open %s: %v %v", link, err, lerr)
	}
	return loc, pageText(t, ctx)
}

const linkRefused = "This sign-in link is not valid"

func TestWebMailboxByLoginLinkAndPreauth(t *testing.T) {
	trackerURL, hits := tracker(t)
	n := startNodeEnv(t, dirtest.URL(t, "sqlite"), "EGRET_SSO_TOKEN_TTL=4s")
	address := makeUser(t, n, "wangfang", "web-secret-1")
	deliver(t, n, address, "From: =?UTF-8?B?6LWE5rqQ6YOo?= <hr@remote.example>\r\nTo: <"+address+">\r\n"+
		"Subject: =?GB18030?B?xOO6wyDKwL3n?=\r\nMessage-ID: <plain.1@remote.example>\r\n\r\n"+
		"Roster for the week is attached.\r\n")
	deliver(t, n, address, "From: Mallory <m@remote.example>\r\nTo: <"+address+">\r\n"+
		"Subject: Hostile HTML\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"+
		"<p id=hello>Hello</p><script>fetch('"+trackerURL+"/script')</script>"+
		"<img src=\""+trackerURL+"/pixel.gif\" onerror=\"fetch('"+trackerURL+"/onerror')\">"+
		"<a id=bad href=\"javascript:fetch('"+trackerURL+"/js')\">click</a>"+
		"<div onmouseover=\"alert(1)\">hover</div>"+
		"<iframe src=\""+trackerURL+"/frame\"></iframe>"+
		"<a id=good href=\"https://portal.example/x\">portal</a>\r\n")
	ctx := browser(t)
	var err error
	step := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		c, cancel := within(ctx)
		defer cancel()
		if err := chromedp.Do(c, steps...); err != nil {
			t.Fatal(err)
		}
	}
	step(chromedp.Navigate("http://" + n.httpAddr + "/mail/login"))

	// A gateway that fetches every link (HEAD, then GET, no cookies)
	// gets a page but no session, and uses nothing up.
	link := loginLink(t, n, "wangfang", "")
	for _, method := range []string{http.MethodHead, http.MethodGet} {
		req, _ := http.NewRequest(method, link, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		for _, c := range resp.Cookies() {
			if strings.Contains(c.Name, "session") {
				t.Fatalf("%s of the link set a session cookie", method)
			}
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s of the link: %s", method, resp.Status)
		}
	}

	// The browser lands in the inbox, with the subject decoded.
	loc, text := open(t, ctx, link)
	if !strings.HasSuffix(loc, "/mail/") || !strings.Contains(text, "你好 世界") ||
		!strings.Contains(text, "资源部") || !strings.Contains(text, address) {
		t.Fatalf("after the link: %s\n%s", loc, text)
	}
	step(chromedp.Click(chromedp.Search(`//a[text()="你好 世界"]`)),
		chromedp.WaitVisible(chromedp.CSS("pre.body")))
	if text := pageText(t, ctx); !strings.Contains(text, "Roster for the week") {
		t.Fatalf("message page: %s", text)
	}

	// The same link again, a tampered one and an expired one fail.
	if _, text := open(t, ctx, link); !strings.Contains(text, linkRefused) {
		t.Fatalf("second use of the link: %s", text)
	}
	tampered := loginLink(t, n, "wangfang", "")
	last := tampered[len(tampered)-1]
	swap := map[bool]string{true: "B", false: "A"}[last == 'A']
	if _, text := open(t, ctx, tampered[:len(tampered)-1]+swap); !strings.Contains(text, linkRefused) {
		t.Fatalf("tampered link: %s", text)
	}
	expired := loginLink(t, n, "wangfang", "")
	time.Sleep(4500 * time.Millisecond)
	if _, text := open(t, ctx, expired); !strings.Contains(text, linkRefused) {
		t.Fatalf("expired link: %s", text)
	}
	// An open redirect is refused when the link is made.
	body, _ := json.Marshal(map[string]string{"user": "wangfang", "return_path": "//evil.example/"})
	if status, _, _ := n.api(http.MethodPost, "/api/v1/sso/tokens", body); status != http.StatusBadRequest {
		t.Fatalf("return path //evil.example/: status %d, want 400", status)
	}

	// The hostile message: nothing runs, nothing is fetched.
	step(chromedp.Navigate("http://"+n.httpAddr+"/mail/"),
		chromedp.Click(chromedp.Search(`//a[text()="Hostile HTML"]`)),
		chromedp.WaitVisible(chromedp.CSS("iframe.body")),
		chromedp.Sleep(time.Second))
	attr := func(name string) string {
		c, cancel := within(ctx)
		defer cancel()
		v, err := chromedp.Run(c, chromedp.AttributeValue(chromedp.CSS("iframe.body"), name))
		if err != nil || !v.Exists {
			t.Fatalf("iframe %s: %v", name, err)
		}
		return v.Value
	}
	srcdoc, sandbox := attr("srcdoc"), attr("sandbox")
	low := strings.ToLower(srcdoc)
	for _, bad := range []string{"<script", "onerror", "onmouseover", "javascript:", "<iframe", "<img", trackerURL} {
		if strings.Contains(low, strings.ToLower(bad)) {
			t.Errorf("the rendered message still holds %q:\n%s", bad, srcdoc)
		}
	}
	if !strings.Contains(srcdoc, "Hello") || !strings.Contains(srcdoc, "https://portal.example/x") {
		t.Errorf("the harmless parts are gone:\n%s", srcdoc)
	}
	if strings.Contains(sandbox, "allow-scripts") || strings.Contains(sandbox, "allow-same-origin") {
		t.Errorf("iframe sandbox %q", sandbox)
	}
	checkRenderedMessage(t, ctx, trackerURL)
	if h := hits.Load(); h != 0 {
		t.Errorf("the message made the browser fetch %d URLs of its own", h)
	}
	if text := pageText(t, ctx); !strings.Contains(text, "Remote images in this message are blocked") {
		t.Errorf("no offer to show remote images: %s", text)
	}

	// A preauth link the test signs itself, as the OA would.
	key, err := n.egret("", "sso", "key", "--domain", mailDomain)
	if err != nil {
		t.Fatal(err)
	}
	key = strings.TrimSpace(key)
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(key) {
		t.Fatalf("egret sso key printed %q", key)
	}
	now := time.Now().Unix()
	ts, exp := strconv.FormatInt(now, 10), strconv.FormatInt(now+120, 10)
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte("egret-preauth-v1\n" + address + "\n" + ts + "\n" + exp))
	mac := hex.EncodeToString(m.Sum(nil))
	pre := fmt.Sprintf("http://%s/mail/preauth?account=%s&ts=%s&exp=%s&mac=%s",
		n.httpAddr, url.QueryEscape(address), ts, exp, mac)
	if _, text := open(t, ctx, strings.Replace(pre, "exp="+exp, "exp="+strconv.FormatInt(now+130, 10), 1)); !strings.Contains(text, linkRefused) {
		t.Fatalf("preauth link with a changed expiry: %s", text)
	}
	if loc, text := open(t, ctx, pre); !strings.HasSuffix(loc, "/mail/") || !strings.Contains(text, "Hostile HTML") {
		t.Fatalf("preauth link: %s\n%s", loc, text)
	}
	if _, text := open(t, ctx, pre); !strings.Contains(text, linkRefused) {
		t.Fatalf("second use of the preauth link: %s", text)
	}
	n.stop(t)
}

// TestWebFormsNeedTheirToken signs in with the password form and sends
// forms without their CSRF token, as another site would.
func TestWebFormsNeedTheirToken(t *testing.T) {
	n := startNode(t, dirtest.URL(t, "sqlite"))
	address := makeUser(t, n, "lina", "form-secret-1")
	deliver(t, n, address, "From: <a@remote.example>\r\nTo: <"+address+">\r\nSubject: One\r\n\r\nx\r\n")
	base := "http://" + n.httpAddr
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	field := func(page, name string) string {
		m := regexp.MustCompile(`name="` + name + `" value="([^"]+)"`).FindStringSubmatch(page)
		if m == nil {
			t.Fatalf("no %s field in:\n%s", name, page)
		}
		return m[1]
	}
	get := func(path string) (int, string) {
		resp, err := c.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	post := func(path string, v url.Values) int {
		resp, err := c.PostForm(base+path, v)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	// Sign-in without the form's own token is refused; a wrong password
	// and an unknown user get the same words.
	if code := post("/mail/login", url.Values{"user": {"lina"}, "password": {"form-secret-1"}}); code != http.StatusForbidden {
		t.Fatalf("login without the pre token: %d, want 403", code)
	}
	_, page := get("/mail/login")
	wrong := post("/mail/login", url.Values{"pre": {field(page, "pre")}, "user": {"lina"}, "password": {"nope"}})
	_, page = get("/mail/login")
	unknown := post("/mail/login", url.Values{"pre": {field(page, "pre")}, "user": {"nobody"}, "password": {"nope"}})
	if wrong != http.StatusUnauthorized || unknown != wrong {
		t.Fatalf("wrong password %d, unknown user %d: want both 401", wrong, unknown)
	}
	_, page = get("/mail/login")
	if code := post("/mail/login", url.Values{"pre": {field(page, "pre")}, "user": {"lina"}, "password": {"form-secret-1"}}); code != http.StatusSeeOther {
		t.Fatalf("login: %d, want 303", code)
	}
	code, page := get("/mail/")
	if code != 200 || !strings.Contains(page, "One") {
		t.Fatalf("inbox after login: %d\n%s", code, page)
	}
	csrf := field(page, "csrf")

	// Mark-unread and logout without the token are refused.
	v := url.Values{"box": {"INBOX"}, "uid": {"1"}, "seen": {"1"}}
	if code := post("/mail/flag", v); code != http.StatusForbidden {
		t.Fatalf("flag without CSRF token: %d, want 403", code)
	}
	v.Set("csrf", flipFirst(csrf))
	if code := post("/mail/flag", v); code != http.StatusForbidden {
		t.Fatalf("flag with a wrong CSRF token: %d, want 403", code)
	}
	if _, page := get("/mail/"); !strings.Contains(page, `class="unread"`) {
		t.Fatal("a refused form changed the message")
	}
	v.Set("csrf", csrf)
	if code := post("/mail/flag", v); code != http.StatusSeeOther {
		t.Fatalf("flag with the token: %d, want 303", code)
	}
	if _, page := get("/mail/"); strings.Contains(page, `class="unread"`) {
		t.Fatal("mark read did not mark the message read")
	}
	if code := post("/mail/logout", url.Values{}); code != http.StatusForbidden {
		t.Fatalf("logout without CSRF token: %d, want 403", code)
	}
	if code := post("/mail/logout", url.Values{"csrf": {csrf}}); code != http.StatusSeeOther {
		t.Fatalf("logout: %d", code)
	}
	if code, _ := get("/mail/"); code != http.StatusSeeOther {
		t.Fatalf("inbox after logout: %d, want a redirect to the login page", code)
	}
}

// messageDocument answers the document Chromium built inside the
// message's sandboxed frame, read over the DevTools protocol: the frame
// has an opaque origin, so no script of the page could reach it. When
// Chromium keeps the frame in the page's process, the frame element's
// description with pierce holds it; when it runs the frame in a process
// of its own (Chromium isolates sandboxed frames), the frame is a
// target of its own, and its DOM is read there.
func messageDocument(t *testing.T, ctx context.Context) (*cdp.Node, string) {
	t.Helper()
	c, cancel := within(ctx)
	defer cancel()
	owners, err := chromedp.Run(c, chromedp.Nodes(chromedp.CSSAll("iframe")))
	if err != nil {
		t.Fatal(err)
	}
	if len(owners) != 1 || attribute(owners[0].Node, "class") != "body" {
		t.Fatalf("want one iframe, the message's; the page has %d", len(owners))
	}
	// DOM.describeNode, unlike DOM.getDocument, leaves the node ids
	// chromedp holds for the page valid.
	owner, err := chromedp.Call(c, dom.DescribeNode, dom.DescribeNodeParams{
		BackendNodeID: owners[0].BackendNodeID, Depth: new(int64(-1)), Pierce: new(true)})
	if err != nil {
		t.Fatal(err)
	}
	if owner.Node.ContentDocument != nil {
		return owner.Node.ContentDocument, "the page's process"
	}

	infos, err := chromedp.Targets(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, info := range infos {
		if info.Type != "iframe" || string(info.TargetID) != string(owner.Node.FrameID) {
			continue
		}
		// Detach only when done: closing the frame's target would
		// take the page with it.
		fctx, fcancel := chromedp.NewContext(ctx, chromedp.WithTargetID(info.TargetID),
			chromedp.WithDetachOnCancel())
		defer fcancel()
		fc, cancel := within(fctx)
		defer cancel()
		tree, err := chromedp.Call(fc, page.GetFrameTree, cdp.Empty{})
		if err != nil {
			t.Fatal(err)
		}
		if u := tree.FrameTree.Frame.URL; u != "about:srcdoc" {
			t.Fatalf("the message frame shows %s, want its srcdoc", u)
		}
		doc, err := chromedp.Call(fc, dom.GetDocument,
			dom.GetDocumentParams{Depth: new(int64(-1)), Pierce: new(true)})
		if err != nil {
			t.Fatal(err)
		}
		return doc.Root, "a process of its own"
	}
	t.Fatalf("frame %s is neither in the page's DOM nor a target", owner.Node.FrameID)
	return nil, ""
}

// attribute answers an element's attribute as the protocol lists it.
func attribute(n *cdp.Node, name string) string {
	for i := 0; i+1 < len(n.Attributes); i += 2 {
		if n.Attributes[i] == name {
			return n.Attributes[i+1]
		}
	}
	return ""
}

// Node types of the DOM Standard (§4.4, Interface Node).
const (
	elementNode = 1
	textNode    = 3
)

// walkNodes calls f for n and everything under it, frames and shadow
// roots included, but for the browser's own shadow trees (the broken
// image icon of an img is an img of Chromium's).
func walkNodes(n *cdp.Node, f func(*cdp.Node)) {
	if n == nil {
		return
	}
	f(n)
	for _, c := range n.Children {
		walkNodes(c, f)
	}
	for _, c := range n.ShadowRoots {
		if c.ShadowRootType != cdp.ShadowRootTypeUserAgent {
			walkNodes(c, f)
		}
	}
	walkNodes(n.ContentDocument, f)
}

// checkRenderedMessage inspects the hostile message as rendered in the
// browser: nothing that runs, and nothing that loads, survived.
func checkRenderedMessage(t *testing.T, ctx context.Context, trackerURL string) {
	t.Helper()
	doc, where := messageDocument(t, ctx)
	t.Logf("the message frame's document, read in %s", where)
	var text strings.Builder
	var links []string
	walkNodes(doc, func(n *cdp.Node) {
		if n.NodeType == textNode {
			text.WriteString(n.NodeValue)
		}
		if n.NodeType != elementNode {
			return
		}
		switch n.NodeName {
		case "SCRIPT", "IFRAME", "FRAME", "OBJECT", "EMBED", "FORM", "BASE", "META", "LINK":
			t.Errorf("the rendered message has a %s element", n.NodeName)
		}
		for i := 0; i+1 < len(n.Attributes); i += 2 {
			name, value := strings.ToLower(n.Attributes[i]), n.Attributes[i+1]
			v := strings.ToLower(strings.Join(strings.Fields(value), ""))
			switch {
			case strings.HasPrefix(name, "on"):
				t.Errorf("the rendered message's %s has the handler %s=%q", n.NodeName, name, value)
			case strings.HasPrefix(v, "javascript:") || strings.HasPrefix(v, "vbscript:"):
				t.Errorf("the rendered message's %s has %s=%q", n.NodeName, name, value)
			case n.NodeName == "IMG" && (name == "src" || name == "srcset") && value != "":
				t.Errorf("the rendered message has a remote image %q", value)
			case strings.Contains(v, strings.ToLower(trackerURL)):
				t.Errorf("the rendered message's %s points at the tracker: %s=%q", n.NodeName, name, value)
			}
			if n.NodeName == "A" && name == "href" {
				links = append(links, value)
			}
		}
	})
	// The harmless parts are there: it was the message that was read.
	if !strings.Contains(text.String(), "Hello") || !slices.Contains(links, "https://portal.example/x") {
		t.Errorf("the rendered message lacks its text or its link: %q, links %q", text.String(), links)
	}
}

// appendMessages puts messages in user's INBOX over IMAP, one after
// the other, so their UIDs follow their order.
func appendMessages(t *testing.T, n *node, user, password string, msgs ...string) {
	t.Helper()
	c, err := imapclient.DialInsecure(n.imapAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, password).Wait(); err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		cmd := c.Append("INBOX", int64(len(m)), nil)
		if _, err := io.WriteString(cmd, m); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	c.Logout().Wait()
}

// webClient signs in to the web mailbox with the password form and
// answers a client holding the session.
func webClient(t *testing.T, n *node, user, password string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	base := "http://" + n.httpAddr
	resp, err := c.Get(base + "/mail/login")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="pre" value="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		t.Fatalf("no pre field in the login form:\n%s", page)
	}
	resp, err = c.PostForm(base+"/mail/login", url.Values{"pre": {string(m[1])},
		"user": {user}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("web login: %s", resp.Status)
	}
	return c
}

// browserSignIn signs the browser in with the password form.
func browserSignIn(t *testing.T, ctx context.Context, n *node, user, password string) {
	t.Helper()
	c, cancel := within(ctx)
	defer cancel()
	err := chromedp.Do(c, chromedp.Navigate("http://"+n.httpAddr+"/mail/login"),
		chromedp.SendKeys(chromedp.CSS(`input[name="user"]`), user),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), password),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("nav.folders")))
	if err != nil {
		t.Fatalf("browser sign-in: %v", err)
	}
}

func TestWebAttachmentDownload(t *testing.T) {
	n := startNode(t, dirtest.URL(t, "sqlite"))
	makeUser(t, n, "liuyang", "attach-secret-1")

	// Binary content, every byte value, so no text conversion can pass
	// unnoticed.
	content := make([]byte, 3000)
	for i := range content {
		content[i] = byte(i * 7)
	}
	b64 := base64.StdEncoding.EncodeToString(content)
	var wrapped strings.Builder
	for len(b64) > 76 {
		wrapped.WriteString(b64[:76] + "\r\n")
		b64 = b64[76:]
	}
	wrapped.WriteString(b64 + "\r\n")
	for _, tc := range []struct {
		name string
		// header is the part's Content-Disposition as a sender wrote
		// it (RFC 2231 for the non-ASCII name).
		header string
		// listed is the name the message page shows, want the one
		// the browser is told to save as.
		listed, want string
	}{
		{"a Chinese file name", `attachment; filename*=UTF-8''%E8%88%AA%E7%8F%AD%E8%AE%A1%E5%88%92%202026.xlsx`,
			"航班计划 2026.xlsx", "航班计划 2026.xlsx"},
		{"a name with a path and a quote", `attachment; filename="..\\..\\etc/passwd\"x.txt"`,
			`..\..\etc/passwd"x.txt`, `.._.._etc_passwd"x.txt`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := "From: <ops@remote.example>\r\nTo: <liuyang@" + mailDomain + ">\r\n" +
				"Subject: Schedule\r\nMIME-Version: 1.0\r\n" +
				"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n" +
				"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee the attachment.\r\n" +
				"--b1\r\nContent-Type: application/vnd.openxmlformats-officedocument.spreadsheetml.sheet\r\n" +
				"Content-Disposition: " + tc.header + "\r\n" +
				"Content-Transfer-Encoding: base64\r\n\r\n" + wrapped.String() + "--b1--\r\n"
			appendMessages(t, n, "liuyang", "attach-secret-1", msg)
			c := webClient(t, n, "liuyang", "attach-secret-1")
			base := "http://" + n.httpAddr

			// The message page lists the attachment by its name.
			resp, err := c.Get(base + "/mail/")
			if err != nil {
				t.Fatal(err)
			}
			list, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			uids := regexp.MustCompile(`/mail/read\?box=INBOX&amp;uid=(\d+)`).FindAllSubmatch(list, -1)
			if len(uids) == 0 {
				t.Fatalf("no message in the list:\n%s", list)
			}
			uid := string(uids[0][1])
			resp, err = c.Get(base + "/mail/read?box=INBOX&uid=" + uid)
			if err != nil {
				t.Fatal(err)
			}
			view, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			link := regexp.MustCompile(`<a href="(/mail/part\?[^"]+)">([^<]*)</a>`).FindSubmatch(view)
			if link == nil || html.UnescapeString(string(link[2])) != tc.listed {
				t.Fatalf("attachment link: %q\n%s", link, view)
			}

			resp, err = c.Get(base + html.UnescapeString(string(link[1])))
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			h := resp.Header
			if resp.StatusCode != http.StatusOK || h.Get("Content-Type") != "application/octet-stream" ||
				h.Get("X-Content-Type-Options") != "nosniff" {
				t.Fatalf("download: %s, Content-Type %q, X-Content-Type-Options %q",
					resp.Status, h.Get("Content-Type"), h.Get("X-Content-Type-Options"))
			}
			if !bytes.Equal(got, content) {
				t.Fatalf("downloaded %d bytes, not the %d of the attachment", len(got), len(content))
			}

			// RFC 6266 §4.3: an ASCII filename for old agents, and the
			// exact name in filename* (RFC 8187) when it is not ASCII.
			cd := h.Get("Content-Disposition")
			disp, params, err := mime.ParseMediaType(cd)
			if err != nil || disp != "attachment" || params["filename"] != tc.want {
				t.Fatalf("Content-Disposition %q: %s %q %v, want the name %q", cd, disp, params, err, tc.want)
			}
			plain := regexp.MustCompile(`(?:^|;)\s*filename="?([^";]*)`).FindStringSubmatch(cd)
			if plain == nil || strings.ContainsFunc(plain[1], func(r rune) bool { return r > 0x7e }) ||
				strings.ContainsAny(plain[1], `/\`) {
				t.Fatalf("Content-Disposition %q: the filename fallback is not plain ASCII", cd)
			}
			exact := plain[1] == tc.want
			if hasExt := strings.Contains(cd, "filename*=UTF-8''"); hasExt == exact {
				t.Fatalf("Content-Disposition %q: filename* given %v where the fallback is exact %v", cd, hasExt, exact)
			}
			ascii := !strings.ContainsFunc(tc.want, func(r rune) bool { return r > 0x7e })
			if !ascii && !strings.Contains(cd, "filename*=UTF-8''%E8%88%AA%E7%8F%AD%E8%AE%A1%E5%88%92%202026.xlsx") {
				t.Fatalf("Content-Disposition %q: filename* is not the RFC 8187 encoding of the name", cd)
			}

			// The message's own content type is never the answer's.
			if strings.Contains(h.Get("Content-Type"), "spreadsheet") {
				t.Fatal("the sender's content type was passed on")
			}
		})
	}
}

// listedSubjects answers the subjects of the browser's message list,
// top to bottom.
func listedSubjects(t *testing.T, ctx context.Context) []string {
	t.Helper()
	c, cancel := within(ctx)
	defer cancel()
	text, err := chromedp.Run(c, chromedp.Text(chromedp.CSS("table")))
	if err != nil {
		t.Fatal(err)
	}
	return regexp.MustCompile(`Roster \d\d`).FindAllString(text, -1)
}

func TestWebListPagesFlagsAndRemoteImages(t *testing.T) {
	n := startNode(t, dirtest.URL(t, "sqlite"))
	makeUser(t, n, "chenjing", "list-secret-1")
	trackerURL, hits := tracker(t)

	// 60 messages, oldest first, and one with a remote image last.
	var msgs []string
	for i := 1; i <= 60; i++ {
		msgs = append(msgs, fmt.Sprintf("From: <ops@remote.example>\r\nTo: <chenjing@%s>\r\n"+
			"Subject: Roster %02d\r\nDate: Mon, 2 Mar 2026 08:%02d:00 +0800\r\n\r\nWeek %d.\r\n",
			mailDomain, i, i-1, i))
	}
	msgs = append(msgs, "From: <news@remote.example>\r\nTo: <chenjing@"+mailDomain+">\r\n"+
		"Subject: Newsletter\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"+
		"<p>News</p><img alt=\"banner\" src=\""+trackerURL+"/banner.png\">\r\n")
	appendMessages(t, n, "chenjing", "list-secret-1", msgs...)

	ctx := browser(t)
	browserSignIn(t, ctx, n, "chenjing", "list-secret-1")
	step := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		c, cancel := within(ctx)
		defer cancel()
		if err := chromedp.Do(c, steps...); err != nil {
			t.Fatal(err)
		}
	}
	want := func(from, to int) []string {
		var s []string
		for i := from; i >= to; i-- {
			s = append(s, fmt.Sprintf("Roster %02d", i))
		}
		return s
	}

	// Newest first, 25 a page: the newsletter and 60 to 37 on page 1,
	// 36 to 12 on page 2, 11 to 1 on page 3.
	if got, w := listedSubjects(t, ctx), want(60, 37); !slices.Equal(got, w) {
		t.Fatalf("page 1 lists %q, want %q", got, w)
	}
	step(chromedp.Click(chromedp.Search(`//a[contains(text(), "Older")]`)),
		chromedp.WaitVisible(chromedp.Search(`//a[text()="Roster 36"]`)))
	if got, w := listedSubjects(t, ctx), want(36, 12); !slices.Equal(got, w) {
		t.Fatalf("page 2 lists %q, want %q", got, w)
	}
	if text := pageText(t, ctx); !strings.Contains(text, "Page 2 of 3") {
		t.Fatalf("page 2: %s", text)
	}

	// Mark read and unread from the list, staying on page 2.
	row := `//tr[.//a[text()="Roster 30"]]`
	rowClass := func() string {
		t.Helper()
		c, cancel := within(ctx)
		defer cancel()
		v, err := chromedp.Run(c, chromedp.AttributeValue(chromedp.Search(row), "class"))
		if err != nil {
			t.Fatal(err)
		}
		return v.Value
	}
	location := func() string {
		t.Helper()
		c, cancel := within(ctx)
		defer cancel()
		loc, err := chromedp.Run(c, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		return loc
	}
	if rowClass() != "unread" {
		t.Fatal("Roster 30 is not unread at first")
	}
	step(chromedp.Click(chromedp.Search(row+`//button[text()="Mark read"]`)),
		chromedp.WaitVisible(chromedp.Search(row+`//button[text()="Mark unread"]`)))
	if rowClass() != "" || !strings.Contains(location(), "page=2") {
		t.Fatalf("after mark read: class %q at %s", rowClass(), location())
	}
	if others := listedSubjects(t, ctx); !slices.Equal(others, want(36, 12)) {
		t.Fatalf("mark read changed the page: %q", others)
	}
	step(chromedp.Click(chromedp.Search(row+`//button[text()="Mark unread"]`)),
		chromedp.WaitVisible(chromedp.Search(row+`//button[text()="Mark read"]`)))
	if rowClass() != "unread" {
		t.Fatalf("after mark unread: class %q", rowClass())
	}

	// Remote images load only when the reader asks.
	step(chromedp.Navigate("http://"+n.httpAddr+"/mail/"),
		chromedp.Click(chromedp.Search(`//a[text()="Newsletter"]`)),
		chromedp.WaitVisible(chromedp.CSS("iframe.body")),
		chromedp.Sleep(time.Second))
	if h := hits.Load(); h != 0 {
		t.Fatalf("the remote image was fetched %d times before it was asked for", h)
	}
	images := func() []string {
		doc, _ := messageDocument(t, ctx)
		var srcs []string
		walkNodes(doc, func(n *cdp.Node) {
			if n.NodeName == "IMG" {
				srcs = append(srcs, attribute(n, "src"))
			}
		})
		return srcs
	}
	if srcs := images(); len(srcs) != 0 {
		t.Fatalf("the message shows images before it was asked: %q", srcs)
	}
	step(chromedp.Click(chromedp.Search(`//a[text()="Show them"]`)),
		chromedp.WaitVisible(chromedp.CSS("iframe.body")))
	if loc := location(); !strings.Contains(loc, "remote=1") {
		t.Fatalf("show images led to %s", loc)
	}
	deadline := time.Now().Add(10 * time.Second)
	for hits.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if hits.Load() == 0 {
		t.Fatal("the remote image was not fetched after the reader asked")
	}
	if srcs := images(); !slices.Equal(srcs, []string{trackerURL + "/banner.png"}) {
		t.Fatalf("images after asking: %q", srcs)
	}
	if text := pageText(t, ctx); strings.Contains(text, "Remote images in this message are blocked") {
		t.Fatal("the offer stays after the images are shown")
	}

	// Opening the message again blocks them again.
	seen := hits.Load()
	step(chromedp.Click(chromedp.Search(`//a[contains(text(), "INBOX")]`)),
		chromedp.Click(chromedp.Search(`//a[text()="Newsletter"]`)),
		chromedp.WaitVisible(chromedp.CSS("iframe.body")),
		chromedp.Sleep(time.Second))
	if hits.Load() != seen || len(images()) != 0 {
		t.Fatalf("the images came back unasked: %d more fetches", hits.Load()-seen)
	}
}

// flipFirst answers token with its first character changed, so that it
// is wrong whatever the first character was.
func flipFirst(token string) string {
	if token == "" {
		return "x"
	}
	if token[0] == '0' {
		return "1" + token[1:]
	}
	return "0" + token[1:]
}
