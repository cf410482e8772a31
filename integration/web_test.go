package integration

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
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
	v.Set("csrf", "0"+csrf[1:])
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
