package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Time limits of a node's life.
const (
	// readyTimeout bounds the wait for /healthz after the start.
	readyTimeout = 60 * time.Second
	// stopTimeout bounds the wait for exit after SIGTERM; an idle node
	// has nothing to drain.
	stopTimeout = 10 * time.Second
	// commandTimeout bounds one CLI call or API request; an import of
	// the full fixture is the slowest of them.
	commandTimeout = 5 * time.Minute
)

// mailDomain is the domain the test nodes receive mail for.
const mailDomain = "egretair.example"

// node is one `egret serve` process that a test started, with the
// environment its CLI calls share.
type node struct {
	env      []string
	httpAddr string
	smtpAddr string
	imapAddr string
	apiKey   string
	logPath  string

	// submitAddr takes STARTTLS, submitTLSAddr implicit TLS.
	submitAddr    string
	submitTLSAddr string

	cmd    *exec.Cmd
	exited chan struct{}
	// waitErr is the process's exit, valid once exited is closed.
	waitErr error
}

// startNode starts egret serve on databaseURL with a data folder and
// ports of its own, and waits until it is ready. The process is killed
// when the test ends if it is still running, and its log is shown if
// the test failed.
func startNode(t *testing.T, databaseURL string) *node {
	t.Helper()
	return startNodeEnv(t, databaseURL)
}

// startNodeEnv is startNode with further EGRET_ settings, which win
// over the test's defaults.
func startNodeEnv(t testing.TB, databaseURL string, extraEnv ...string) *node {
	t.Helper()
	// A free port may be taken by another test's listener between
	// freePorts and egret's bind; only that is worth another try.
	const attempts = 3
	for i := 1; ; i++ {
		n, err := launch(t, databaseURL, extraEnv)
		if err == nil {
			return n
		}
		if i < attempts && strings.Contains(tail(n.logPath, 20), "address already in use") {
			t.Logf("start %d: a port was taken meanwhile; trying other ports", i)
			continue
		}
		t.Fatal(err)
	}
}

// launch makes one attempt of startNode.
func launch(t testing.TB, databaseURL string, extraEnv []string) (*node, error) {
	t.Helper()
	dir := t.TempDir()
	ports := freePorts(t, 6)
	n := &node{
		httpAddr: ports[0],
		smtpAddr: ports[1],
		imapAddr: ports[2],
		apiKey:   randomString(t, 24),
		logPath:  filepath.Join(dir, "serve.log"),
		exited:   make(chan struct{}),

		submitAddr:    ports[3],
		submitTLSAddr: ports[4],
	}
	n.env = append(environWithoutEgret(),
		"EGRET_NODE_DATA_DIR="+filepath.Join(dir, "data"),
		"EGRET_DATABASE_URL="+databaseURL,
		"EGRET_HTTP_ADDR="+n.httpAddr,
		"EGRET_SMTP_ADDR="+n.smtpAddr,
		"EGRET_IMAP_ADDR="+n.imapAddr,
		"EGRET_MAIL_DOMAIN="+mailDomain,
		"EGRET_API_BOOTSTRAP_KEY="+n.apiKey,
		"EGRET_SUBMISSION_ADDR="+n.submitAddr,
		"EGRET_SUBMISSION_TLS_ADDR="+n.submitTLSAddr,
		// No test may reach a real DNS server or MX: unless a test
		// starts its own, lookups go to a loopback port nobody serves.
		"EGRET_OUTBOUND_RESOLVER="+ports[5],
	)
	n.env = append(n.env, extraEnv...)

	logFile, err := os.Create(n.logPath)
	if err != nil {
		return n, err
	}
	n.cmd = exec.Command(egretBin, "serve")
	n.cmd.Env = n.env
	n.cmd.Dir = dir
	n.cmd.Stdout = logFile
	n.cmd.Stderr = logFile
	if err := n.cmd.Start(); err != nil {
		logFile.Close()
		return n, fmt.Errorf("start egret serve: %w", err)
	}
	go func() {
		n.waitErr = n.cmd.Wait()
		logFile.Close()
		close(n.exited)
	}()

	// Cleanups run last first: the kill, then the log, so the log is
	// complete when it is shown.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("egret serve log (%s):\n%s", n.logPath, tail(n.logPath, 200))
		}
	})
	t.Cleanup(func() {
		select {
		case <-n.exited:
		default:
			n.cmd.Process.Kill()
			<-n.exited
		}
	})

	start := time.Now()
	if err := n.waitReady(); err != nil {
		return n, err
	}
	t.Logf("egret serve ready in %v", time.Since(start).Round(time.Millisecond))
	return n, nil
}

// waitReady polls GET /healthz until it answers 200.
func (n *node) waitReady() error {
	client := &http.Client{Timeout: 2 * time.Second}
	start := time.Now()
	var last string
	for time.Since(start) < readyTimeout {
		select {
		case <-n.exited:
			return fmt.Errorf("egret serve exited before it was ready: %v", n.waitErr)
		default:
		}
		resp, err := client.Get("http://" + n.httpAddr + "/healthz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("GET /healthz did not answer 200 within %v; last: %s", readyTimeout, last)
}

// stop sends SIGTERM and requires a clean exit, status 0, in time.
func (n *node) stop(t *testing.T) {
	t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-n.exited:
	case <-time.After(stopTimeout):
		t.Fatalf("egret serve still runs %v after SIGTERM", stopTimeout)
	}
	if n.waitErr != nil {
		t.Fatalf("egret serve after SIGTERM: %v (want exit status 0)", n.waitErr)
	}
}

// egret runs an egret subcommand against the node's configuration, with
// stdin as its input, and answers its standard output. A non-zero exit
// is answered as an error that carries the standard error.
func (n *node) egret(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, egretBin, args...)
	cmd.Env = n.env
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("egret %s: %w\nstderr:\n%s",
			strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// api sends a request with the bootstrap key and answers the status and
// body.
func (n *node) api(method, path string, body []byte) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	u := "http://" + n.httpAddr + path
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+n.apiKey)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("%s %s: read body: %w", method, path, err)
	}
	return resp.StatusCode, b, nil
}

// getJSON GETs an API path that must answer 200 and decodes the body.
func (n *node) getJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	status, body, err := n.api(http.MethodGet, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusOK {
		t.Fatalf("GET %s: status %d, want 200; body: %s", path, status, body)
	}
	var v map[string]any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("GET %s: body is not a JSON object: %v\n%s", path, err, body)
	}
	return v
}

// freePorts answers count distinct loopback addresses that were free a
// moment ago. All are held open together so no two are the same.
func freePorts(t testing.TB, count int) []string {
	t.Helper()
	var addrs []string
	for range count {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs
}

// environWithoutEgret answers this process's environment without any
// EGRET_ setting, so a developer's own configuration cannot leak into a
// test node.
func environWithoutEgret() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "EGRET_") {
			env = append(env, kv)
		}
	}
	return env
}

// randomString answers n URL-safe random characters.
func randomString(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)[:n]
}

// tail answers the last lines of a file, for a failure message.
func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		skipped := fmt.Sprintf("... %d earlier lines ...", len(all)-lines)
		all = append([]string{skipped}, all[len(all)-lines:]...)
	}
	return strings.Join(all, "\n")
}

// kill stops n with SIGKILL and waits until it is gone.
func kill(t *testing.T, n *node) {
	t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL: %v", err)
	}
	select {
	case <-n.exited:
	case <-time.After(stopTimeout):
		t.Fatalf("egret serve still runs %v after SIGKILL", stopTimeout)
	}
}
