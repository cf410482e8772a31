package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/egretair/egret/directory"
	"github.com/egretair/egret/mailcore/queue"
	"github.com/egretair/egret/sso/oidcp"
)

// Config is egret's configuration: a TOML file whose every key may also be
// set in the environment as EGRET_<SECTION>_<KEY>, which wins over the
// file. With neither, the defaults run role "all" on SQLite under
// ./egret-data with unprivileged loopback ports.
type Config struct {
	Node      NodeConfig      `toml:"node"`
	Database  DatabaseConfig  `toml:"database"`
	Directory DirectoryConfig `toml:"directory"`
	HTTP      HTTPConfig      `toml:"http"`
	SMTP      SMTPConfig      `toml:"smtp"`
	IMAP      IMAPConfig      `toml:"imap"`
	Queue     QueueConfig     `toml:"queue"`
	LMTP      LMTPConfig      `toml:"lmtp"`
	Mail      MailConfig      `toml:"mail"`
	TLS       TLSConfig       `toml:"tls"`
	API       APIConfig       `toml:"api"`
	Log       LogConfig       `toml:"log"`
	OA        OAConfig        `toml:"oa"`
	LDAP      LDAPConfig      `toml:"ldap"`
	OIDC      OIDCConfig      `toml:"oidc"`
	SSO       SSOConfig       `toml:"sso"`
	Cluster   ClusterConfig   `toml:"cluster"`

	// Submission and Outbound are the sending side of mail.
	Submission SubmissionConfig `toml:"submission"`
	Outbound   OutboundConfig   `toml:"outbound"`
}

// NodeConfig says what this process is.
type NodeConfig struct {
	// Role is "all" (everything in one process), "front" (SMTP,
	// submission, HTTP and the queue, with IMAP proxied to the backs)
	// or "back" (the mail store, reached over LMTP and proxied IMAP).
	// Back must match the back's name in cluster.backs.
	Role string `toml:"role"`
	// DataDir holds the SQLite database, the mail store and the
	// generated TLS certificate.
	DataDir string `toml:"data_dir"`
	// Hostname is the name the node gives in SMTP greetings and trace
	// headers, and puts in its self-signed certificate.
	Hostname string `toml:"hostname"`
	// Name identifies the node to its peers, in heartbeats and log
	// lines; empty means Hostname.
	Name string `toml:"name"`
	// Back is, on a back node, the back it serves, as cluster.backs
	// and accounts' home nodes name it; empty means Name. Two back
	// nodes with the same Back and different Names serve one store
	// folder as an active and a standby.
	Back string `toml:"back"`
}

// ClusterConfig names the node's peers and how fronts and backs trust
// each other.
type ClusterConfig struct {
	// Nodes lists the heartbeat URLs of the other nodes
	// (http://HOST:PORT/heartbeat), separated by commas, for
	// `egret status`.
	Nodes string `toml:"nodes"`
	// ProxySecret is the password fronts sign their IMAP clients in
	// with on a back; the same on every node, at least 16 characters,
	// required for roles front and back. Keep it in the environment.
	ProxySecret string `toml:"proxy_secret"`
	// ProxySources are the networks a back takes proxy logins from,
	// as CIDRs separated by commas.
	ProxySources string `toml:"proxy_sources"`
	// Backs lists a front's back nodes, separated by commas, each
	// NAME=IMAP/LMTP/HTTP with HOST:PORT addresses, for example
	// "b1=10.0.0.5:1143/10.0.0.5:2424/10.0.0.5:8080". The heartbeat
	// is read at http://HTTP/heartbeat. A back listed twice, once
	// per process, runs as an active and a standby (see backpair.go).
	Backs string `toml:"backs"`
	// BreakerInterval is how often a front polls each back's
	// heartbeat; three failures in a row open its breaker.
	BreakerInterval time.Duration `toml:"breaker_interval"`
	// LeaseTTL is how long a back's lease on its store holds without
	// renewal; it is renewed every fifth of that, and a standby takes
	// over once it lapses.
	LeaseTTL time.Duration `toml:"lease_ttl"`
}

// backNode is one entry of cluster.backs.
type backNode struct {
	Name, IMAP, LMTP, HTTP string
	// Member tells apart the two entries of a back listed twice, an
	// active and a standby: "NAME/1" and "NAME/2"; "" for a back
	// listed once.
	Member string
}

// clusterBacks answers the backs of cluster.backs, each once, with the
// addresses of its first entry.
func (c Config) clusterBacks() ([]backNode, error) {
	members, err := c.clusterMembers()
	if err != nil {
		return nil, err
	}
	var out []backNode
	for _, m := range members {
		if m.Member == "" || strings.HasSuffix(m.Member, "/1") {
			m.Member = ""
			out = append(out, m)
		}
	}
	return out, nil
}

// clusterMembers parses cluster.backs: every entry, a back listed twice
// (its active and its standby) with both.
func (c Config) clusterMembers() ([]backNode, error) {
	var out []backNode
	seen := map[string]int{}
	for _, e := range strings.Split(c.Cluster.Backs, ",") {
		if e = strings.TrimSpace(e); e == "" {
			continue
		}
		name, rest, ok := strings.Cut(e, "=")
		parts := strings.Split(rest, "/")
		if !ok || name == "" || len(parts) != 3 {
			return nil, fmt.Errorf("cluster.backs: %q: want NAME=IMAP/LMTP/HTTP", e)
		}
		for _, a := range parts {
			if _, _, err := net.SplitHostPort(a); err != nil {
				return nil, fmt.Errorf("cluster.backs: %q: %q is not HOST:PORT", e, a)
			}
		}
		if seen[name] == 2 {
			return nil, fmt.Errorf("cluster.backs: %q named more than twice: a back has an active and a standby at most", name)
		}
		seen[name]++
		out = append(out, backNode{Name: name, IMAP: parts[0], LMTP: parts[1], HTTP: parts[2]})
	}
	count := map[string]int{}
	for i, b := range out {
		if seen[b.Name] == 2 {
			count[b.Name]++
			out[i].Member = fmt.Sprintf("%s/%d", b.Name, count[b.Name])
		}
	}
	return out, nil
}

// proxySources parses cluster.proxy_sources.
func (c Config) proxySources() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range strings.Split(c.Cluster.ProxySources, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("cluster.proxy_sources: %w", err)
		}
		out = append(out, p)
	}
	return out, nil
}

// backName answers the back a back node serves.
func (c Config) backName() string {
	if c.Node.Back != "" {
		return c.Node.Back
	}
	return c.nodeName()
}

// nodeName answers the name the node goes by among its peers.
func (c Config) nodeName() string {
	if c.Node.Name != "" {
		return c.Node.Name
	}
	return c.Node.Hostname
}

// clusterNodes answers the peers' heartbeat URLs.
func (c Config) clusterNodes() []string {
	var urls []string
	for _, u := range strings.Split(c.Cluster.Nodes, ",") {
		if u = strings.TrimSpace(u); u != "" {
			urls = append(urls, u)
		}
	}
	return urls
}

// DatabaseConfig names the directory's database.
type DatabaseConfig struct {
	// URL is "sqlite:PATH" or "mysql://USER:PASS@tcp(HOST:PORT)/DB";
	// empty means SQLite in the data folder.
	URL string `toml:"url"`
	// Replicas lists MySQL/MariaDB replicas of URL, as URLs of the same
	// form separated by commas. The reads that may trail URL, the
	// address and list lookups of mail, go to a healthy one; the reads
	// that decide access (sign-ins, tokens, API keys) go to URL while
	// it is up. While URL is down, both go to any replica that answers.
	Replicas string `toml:"replicas"`
	// MaxReplicaLag is how far a replica may trail URL and still be
	// read from first.
	MaxReplicaLag time.Duration `toml:"max_replica_lag"`
}

// replicaURLs answers the replicas' URLs.
func (c DatabaseConfig) replicaURLs() []string {
	var out []string
	for _, u := range strings.Split(c.Replicas, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// DirectoryConfig configures the account lifecycle.
type DirectoryConfig struct {
	// Retention is how long a deleted account is kept, restorable,
	// before it is purged, as a Go duration ("720h" is 30 days).
	Retention time.Duration `toml:"retention"`
}

// HTTPConfig configures the API listener.
type HTTPConfig struct {
	Addr string `toml:"addr"`
	// MaxSnapshotBytes bounds the body of an OA snapshot upload.
	MaxSnapshotBytes int64 `toml:"max_snapshot_bytes"`
}

// SMTPConfig configures the SMTP listener for incoming mail.
type SMTPConfig struct {
	Addr            string `toml:"addr"`
	MaxMessageBytes int64  `toml:"max_message_bytes"`
}

// SubmissionConfig configures the listeners users send mail on.
type SubmissionConfig struct {
	// Addr takes STARTTLS (port 587 in production).
	Addr string `toml:"addr"`
	// TLSAddr is TLS from the first byte (port 465 in production).
	TLSAddr string `toml:"tls_addr"`
	// MessagesPerHour limits what one account sends in any hour.
	MessagesPerHour int `toml:"messages_per_hour"`
	// MaxRecipients limits the recipients of one message.
	MaxRecipients int `toml:"max_recipients"`
}

// OutboundConfig configures delivery to other domains.
type OutboundConfig struct {
	// Resolver is a DNS server's HOST:PORT for MX lookups; empty means
	// the system's resolver.
	Resolver string `toml:"resolver"`
	// Port is the port MX hosts are reached on.
	Port int `toml:"port"`
	// VerifyTLS refuses MX hosts whose STARTTLS certificate does not
	// verify, instead of sending over unauthenticated TLS.
	VerifyTLS bool `toml:"verify_tls"`
}

// IMAPConfig configures the IMAP listener.
type IMAPConfig struct {
	Addr string `toml:"addr"`
}

// QueueConfig configures the delivery queue under <data_dir>/queue.
type QueueConfig struct {
	// Workers bounds the deliveries in flight.
	Workers int `toml:"workers"`
	// RetrySchedule is the wait after each failed attempt of a
	// recipient, separated by spaces; the last one repeats.
	RetrySchedule string `toml:"retry_schedule"`
	// GiveUpAfter is how long after its arrival a message is tried.
	GiveUpAfter time.Duration `toml:"give_up_after"`
	// DelayNoticeAfter is how long a message waits before its sender
	// is told, once, that it is still being retried.
	DelayNoticeAfter time.Duration `toml:"delay_notice_after"`
}

// LMTPConfig configures the LMTP hop between the queue and the store.
type LMTPConfig struct {
	// Addr is "unix:PATH" or a loopback HOST:PORT; empty means the
	// socket lmtp.sock in the data folder.
	Addr string `toml:"addr"`
}

// MailConfig holds the mail domain.
type MailConfig struct {
	// Domain is the domain whose addresses egret hands out and accepts
	// mail for.
	Domain string `toml:"domain"`
}

// TLSConfig names a certificate. Without one, egret makes a self-signed
// certificate in the data folder on first start.
type TLSConfig struct {
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
}

// APIConfig configures API access.
type APIConfig struct {
	// BootstrapKey, when set, is seeded at start as a key with every
	// scope, for automation that must call the API before anyone could
	// have made a key. Keep it in the environment, not in the file.
	BootstrapKey string `toml:"bootstrap_key"`
}

// OAConfig configures OA sync: the safety valve and the EKP pull
// connector.
type OAConfig struct {
	// DisableThreshold is how many accounts one import may disable
	// before it is held for approval; -1 turns the valve off.
	DisableThreshold int `toml:"disable_threshold"`
	// EKPURL is the address of EKP's organisation export service
	// (getUpdatedElements, REST form); empty turns pulling off.
	EKPURL string `toml:"ekp_url"`
	// EKPToken, when set, is sent as the Authorization header (as a
	// bearer token unless it holds a space). Keep it in the environment.
	EKPToken string `toml:"ekp_token"`
	// PullInterval is how often serve pulls from EKP.
	PullInterval time.Duration `toml:"pull_interval"`
	// PullPageSize is the count asked of EKP per request.
	PullPageSize int `toml:"pull_page_size"`
}

// LDAPConfig configures the LDAP mirror. Without a URL it is off.
type LDAPConfig struct {
	// URL is "ldap://HOST:PORT" or "ldaps://HOST:PORT".
	URL string `toml:"url"`
	// BindDN and BindPassword are who the mirror binds as; it needs to
	// write, and read userPassword, everywhere under BaseDN. Keep the
	// password in the environment.
	BindDN       string `toml:"bind_dn"`
	BindPassword string `toml:"bind_password"`
	// BaseDN is the entry egret keeps its tree under; everything below
	// it is egret's.
	BaseDN string `toml:"base_dn"`
	// ReconcileInterval is how often serve compares the whole directory
	// with LDAP and repairs drift; 0 turns it off.
	ReconcileInterval time.Duration `toml:"reconcile_interval"`
	// Connections is how many connections a full pass writes over.
	Connections int `toml:"connections"`
}

// OIDCConfig configures the OpenID Connect provider (package
// sso/oidcp) and upstream sign-in (package sso/upstream).
type OIDCConfig struct {
	// Issuer is the provider's URL, https except on loopback, without
	// a path. Empty means http://<http.addr> when that is a loopback
	// address, and the provider off otherwise.
	Issuer string `toml:"issuer"`
	// KeyGrace is how long a retired signing key stays in the JWKS.
	KeyGrace time.Duration `toml:"key_grace"`
	// UpstreamIssuer, when set, adds "sign in with the company account"
	// through that OpenID Connect provider. egret's redirect URI there
	// is <issuer>/oidc/upstream/callback.
	UpstreamIssuer   string `toml:"upstream_issuer"`
	UpstreamClientID string `toml:"upstream_client_id"`
	// UpstreamClientSecret: keep it in the environment.
	UpstreamClientSecret string `toml:"upstream_client_secret"`
}

// issuer answers the provider's issuer, empty when it is off.
func (c Config) issuer() string {
	if c.OIDC.Issuer != "" {
		return strings.TrimSuffix(c.OIDC.Issuer, "/")
	}
	host, _, err := net.SplitHostPort(c.HTTP.Addr)
	if ip := net.ParseIP(host); err == nil && (host == "localhost" || (ip != nil && ip.IsLoopback())) {
		return "http://" + c.HTTP.Addr
	}
	return ""
}

// LogConfig configures logging.
type LogConfig struct {
	// Level is debug, info, warn or error.
	Level string `toml:"level"`
	// Format is "json" or "text"; empty picks text on a terminal and
	// JSON elsewhere.
	Format string `toml:"format"`
}

// defaultConfig answers the configuration with no file and no
// environment.
func defaultConfig() Config {
	return Config{
		Node: NodeConfig{Role: "all", DataDir: "./egret-data", Hostname: "localhost"},
		HTTP: HTTPConfig{Addr: "127.0.0.1:8080", MaxSnapshotBytes: 256 << 20},
		SMTP: SMTPConfig{Addr: "127.0.0.1:2525", MaxMessageBytes: 50 << 20},
		IMAP: IMAPConfig{Addr: "127.0.0.1:1143"},
		Queue: QueueConfig{
			Workers:       8,
			RetrySchedule: "1m 5m 15m 30m 1h",
			GiveUpAfter:   5 * 24 * time.Hour,

			DelayNoticeAfter: 4 * time.Hour,
		},
		Mail:      MailConfig{Domain: "egretair.example"},
		Log:       LogConfig{Level: "info"},
		OA:        OAConfig{DisableThreshold: 500, PullInterval: 5 * time.Minute, PullPageSize: 500},
		Database:  DatabaseConfig{MaxReplicaLag: directory.DefaultMaxReplicaLag},
		Directory: DirectoryConfig{Retention: 30 * 24 * time.Hour},
		LDAP:      LDAPConfig{ReconcileInterval: 6 * time.Hour, Connections: 4},
		SSO: SSOConfig{TokenTTL: time.Minute, SessionTTL: 8 * time.Hour, KeyGrace: 24 * time.Hour,
			LockAfter: 5, LockAddressAfter: 20, LockFor: 15 * time.Minute},

		Submission: SubmissionConfig{Addr: "127.0.0.1:1587", TLSAddr: "127.0.0.1:1465",
			MessagesPerHour: 300, MaxRecipients: 100},
		Outbound: OutboundConfig{Port: 25},
		Cluster: ClusterConfig{ProxySources: "127.0.0.0/8,::1/128",
			BreakerInterval: 2 * time.Second, LeaseTTL: 5 * time.Second},
	}
}

// loadConfig reads the file at path (none when path is empty), then the
// environment, over the defaults, and checks the result.
func loadConfig(path string, environ []string) (Config, error) {
	cfg := defaultConfig()
	if path != "" {
		md, err := toml.DecodeFile(path, &cfg)
		if err != nil {
			return cfg, fmt.Errorf("config %s: %w", path, err)
		}
		if undec := md.Undecoded(); len(undec) > 0 {
			return cfg, fmt.Errorf("config %s: unknown key %s", path, undec[0])
		}
	}
	if err := applyEnv(&cfg, environ); err != nil {
		return cfg, err
	}

	if cfg.Database.URL == "" {
		cfg.Database.URL = "sqlite:" + filepath.Join(cfg.Node.DataDir, "egret.db")
	}
	cfg.Mail.Domain = strings.ToLower(strings.TrimSpace(cfg.Mail.Domain))
	return cfg, cfg.check()
}

func (c Config) check() error {
	var errs []error
	errs = append(errs, c.checkRole())
	if c.Node.DataDir == "" {
		errs = append(errs, errors.New("node.data_dir is empty"))
	}
	if c.Mail.Domain == "" || strings.ContainsAny(c.Mail.Domain, "@ ") {
		errs = append(errs, fmt.Errorf("mail.domain %q is not a domain name", c.Mail.Domain))
	}
	if _, err := queue.ParseRetry(c.Queue.RetrySchedule); err != nil {
		errs = append(errs, fmt.Errorf("queue.retry_schedule: %w", err))
	}
	if c.Queue.Workers < 1 {
		errs = append(errs, fmt.Errorf("queue.workers %d: want at least 1", c.Queue.Workers))
	}
	if c.Queue.GiveUpAfter <= 0 {
		errs = append(errs, fmt.Errorf("queue.give_up_after %v: want a positive duration", c.Queue.GiveUpAfter))
	}
	if a := c.LMTP.Addr; a != "" && !strings.HasPrefix(a, "unix:") && c.Node.Role != "back" {
		// LMTP takes mail for any local account without a sign-in: on
		// a public address it would be an open door into every INBOX.
		// A back takes it from its fronts over the network, so there
		// the firewall has to keep everyone else out.
		host, _, err := net.SplitHostPort(a)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			errs = append(errs, fmt.Errorf("lmtp.addr %q: want unix:PATH or a loopback IP:PORT", a))
		}
	}
	if c.Queue.DelayNoticeAfter < 0 {
		errs = append(errs, fmt.Errorf("queue.delay_notice_after %v: want a duration, 0 for none", c.Queue.DelayNoticeAfter))
	}
	for key, a := range map[string]string{"submission.addr": c.Submission.Addr, "submission.tls_addr": c.Submission.TLSAddr} {
		if _, _, err := net.SplitHostPort(a); a != "" && err != nil {
			errs = append(errs, fmt.Errorf("%s %q: want HOST:PORT, or empty for none", key, a))
		}
	}
	if c.Submission.MessagesPerHour < 1 || c.Submission.MaxRecipients < 1 {
		errs = append(errs, errors.New("submission.messages_per_hour and submission.max_recipients must be at least 1"))
	}
	if a := c.Outbound.Resolver; a != "" {
		if _, _, err := net.SplitHostPort(a); err != nil {
			errs = append(errs, fmt.Errorf("outbound.resolver %q: want HOST:PORT of a DNS server, or empty", a))
		}
	}
	if p := c.Outbound.Port; p < 1 || p > 65535 {
		errs = append(errs, fmt.Errorf("outbound.port %d: want 1 to 65535", p))
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		errs = append(errs, errors.New("tls.cert_file and tls.key_file go together"))
	}
	if c.Directory.Retention < time.Hour {
		errs = append(errs, fmt.Errorf("directory.retention %s: want at least 1h", c.Directory.Retention))
	}
	if c.OA.DisableThreshold < -1 {
		errs = append(errs, fmt.Errorf("oa.disable_threshold %d: want a count, or -1 for no limit", c.OA.DisableThreshold))
	}
	if c.OA.EKPURL != "" && (c.OA.PullInterval < time.Second || c.OA.PullPageSize < 1) {
		errs = append(errs, errors.New("oa.pull_interval must be at least 1s and oa.pull_page_size at least 1"))
	}
	if k := c.API.BootstrapKey; k != "" && len(k) < 16 {
		errs = append(errs, errors.New("api.bootstrap_key must have at least 16 characters"))
	}
	if c.LDAP.URL != "" && c.LDAP.BaseDN == "" {
		errs = append(errs, errors.New("ldap.base_dn is required with ldap.url"))
	}
	if c.LDAP.Connections < 1 || c.LDAP.ReconcileInterval < 0 {
		errs = append(errs, errors.New("ldap.connections must be at least 1 and ldap.reconcile_interval not negative"))
	}
	if iss := c.issuer(); iss != "" {
		if err := oidcp.CheckIssuer(iss); err != nil {
			errs = append(errs, fmt.Errorf("oidc.issuer: %w", err))
		}
	}
	if c.OIDC.UpstreamIssuer != "" && (c.OIDC.UpstreamClientID == "" || c.issuer() == "") {
		errs = append(errs, errors.New("oidc.upstream_issuer needs oidc.upstream_client_id and an oidc.issuer"))
	}
	if c.OIDC.KeyGrace < 0 {
		errs = append(errs, fmt.Errorf("oidc.key_grace %s: want a duration, 0 for the default", c.OIDC.KeyGrace))
	}
	for _, u := range c.clusterNodes() {
		if p, err := url.Parse(u); err != nil || p.Scheme != "http" && p.Scheme != "https" || p.Host == "" {
			errs = append(errs, fmt.Errorf("cluster.nodes: %q is not an http URL", u))
		}
	}
	if _, _, err := c.webURL(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.SSO.check())
	return errors.Join(errs...)
}

// applyEnv sets every field that has an EGRET_<SECTION>_<KEY> variable.
func applyEnv(cfg *Config, environ []string) error {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "EGRET_") {
			env[k] = v
		}
	}

	var errs []error
	root := reflect.ValueOf(cfg).Elem()
	for i := 0; i < root.NumField(); i++ {
		section := root.Type().Field(i).Tag.Get("toml")
		sv := root.Field(i)
		for j := 0; j < sv.NumField(); j++ {
			key := sv.Type().Field(j).Tag.Get("toml")
			name := "EGRET_" + strings.ToUpper(section) + "_" + strings.ToUpper(key)
			v, ok := env[name]
			if !ok {
				continue
			}
			if err := setField(sv.Field(j), v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}

func setField(f reflect.Value, v string) error {
	switch f.Interface().(type) {
	case string:
		f.SetString(v)
	case time.Duration:
		d, err := time.ParseDuration(v)
		if err != nil {
			return err
		}
		f.SetInt(int64(d))
	case int, int64:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("want a whole number, not %q", v)
		}
		f.SetInt(n)
	case bool:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("want true or false, not %q", v)
		}
		f.SetBool(b)
	default:
		return fmt.Errorf("unsupported type %s", f.Type())
	}
	return nil
}

// configPath answers the config path from --config or, failing that,
// EGRET_CONFIG.
func configPath(flag string) string {
	if flag != "" {
		return flag
	}
	return os.Getenv("EGRET_CONFIG")
}

// unknownEnv answers the EGRET_ variables in environ that set no key, so
// that a misspelt one is reported instead of silently doing nothing.
// EGRET_CONFIG and the test suite's EGRET_TEST_ variables are known.
func unknownEnv(environ []string) []string {
	known := map[string]bool{"EGRET_CONFIG": true}
	root := reflect.TypeOf(Config{})
	for i := 0; i < root.NumField(); i++ {
		section := root.Field(i)
		for j := 0; j < section.Type.NumField(); j++ {
			name := "EGRET_" + strings.ToUpper(section.Tag.Get("toml")) + "_" +
				strings.ToUpper(section.Type.Field(j).Tag.Get("toml"))
			known[name] = true
		}
	}
	var unknown []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "EGRET_") && !strings.HasPrefix(k, "EGRET_TEST_") && !known[k] {
			unknown = append(unknown, k)
		}
	}
	return unknown
}
