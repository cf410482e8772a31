package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigLayers(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "egret.toml")
	os.WriteFile(file, []byte(`
[node]
data_dir = "/srv/egret"
[smtp]
addr = "0.0.0.0:25"
max_message_bytes = 1000
[mail]
domain = "EgretAir.Example"
`), 0o600)

	cases := []struct {
		name  string
		file  string
		env   []string
		check func(t *testing.T, c Config)
	}{
		{"no file and no environment give the embedded defaults", "", nil, func(t *testing.T, c Config) {
			if c.Node.Role != "all" || c.Node.DataDir != "./egret-data" ||
				c.Database.URL != "sqlite:egret-data/egret.db" ||
				c.HTTP.Addr != "127.0.0.1:8080" || c.SMTP.Addr != "127.0.0.1:2525" ||
				c.IMAP.Addr != "127.0.0.1:1143" || c.Mail.Domain != "egretair.example" {
				t.Fatalf("defaults: %+v", c)
			}
		}},
		{"the file overrides the defaults", file, nil, func(t *testing.T, c Config) {
			if c.SMTP.Addr != "0.0.0.0:25" || c.SMTP.MaxMessageBytes != 1000 || c.Mail.Domain != "egretair.example" ||
				c.Database.URL != "sqlite:/srv/egret/egret.db" || c.IMAP.Addr != "127.0.0.1:1143" {
				t.Fatalf("from file: %+v", c)
			}
		}},
		{"the environment overrides the file", file, []string{
			"EGRET_SMTP_ADDR=127.0.0.1:2600",
			"EGRET_SMTP_MAX_MESSAGE_BYTES=2000",
			"EGRET_DATABASE_URL=mysql://u:p@tcp(db:3306)/egret",
			"EGRET_API_BOOTSTRAP_KEY=0123456789abcdef",
			"PATH=/bin",
		}, func(t *testing.T, c Config) {
			if c.SMTP.Addr != "127.0.0.1:2600" || c.SMTP.MaxMessageBytes != 2000 ||
				c.Database.URL != "mysql://u:p@tcp(db:3306)/egret" || c.API.BootstrapKey != "0123456789abcdef" {
				t.Fatalf("from env: %+v", c)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := loadConfig(c.file, c.env)
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, cfg)
		})
	}
}

func TestConfigRefusals(t *testing.T) {
	dir := t.TempDir()
	unknown := filepath.Join(dir, "unknown.toml")
	os.WriteFile(unknown, []byte("[smtp]\nadress = \"x\"\n"), 0o600)

	cases := []struct {
		name, file string
		env        []string
		want       string
	}{
		{"a misspelt key in the file is named", unknown, nil, "smtp.adress"},
		{"a number that is not one is named", "", []string{"EGRET_SMTP_MAX_MESSAGE_BYTES=lots"}, "EGRET_SMTP_MAX_MESSAGE_BYTES"},
		{"a short bootstrap key is refused", "", []string{"EGRET_API_BOOTSTRAP_KEY=short"}, "bootstrap_key"},
		{"a mail domain with an at sign is refused", "", []string{"EGRET_MAIL_DOMAIN=a@b"}, "mail.domain"},
		{"an unknown role is refused", "", []string{"EGRET_NODE_ROLE=middle"}, "node.role"},
		{"a front without a proxy secret is refused", "", []string{"EGRET_NODE_ROLE=front"}, "cluster.proxy_secret"},
		{"a front on SQLite is refused", "", []string{"EGRET_NODE_ROLE=front"}, "database.url"},
		{"a back entry without three addresses is refused", "", []string{"EGRET_NODE_ROLE=front",
			"EGRET_CLUSTER_BACKS=b1=127.0.0.1:1/127.0.0.1:2"}, "cluster.backs"},
		{"a back without a TCP LMTP address is refused", "", []string{"EGRET_NODE_ROLE=back"}, "lmtp.addr"},
		{"a public LMTP address is refused on a front", "", []string{"EGRET_NODE_ROLE=front",
			"EGRET_LMTP_ADDR=10.0.0.5:2424"}, "lmtp.addr"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := loadConfig(c.file, c.env)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error naming %s", err, c.want)
			}
		})
	}
}

func TestClusterRoles(t *testing.T) {
	base := []string{"EGRET_DATABASE_URL=mysql://u:p@tcp(127.0.0.1:3306)/egret",
		"EGRET_CLUSTER_PROXY_SECRET=0123456789abcdef"}
	front, err := loadConfig("", append(base, "EGRET_NODE_ROLE=front",
		"EGRET_CLUSTER_BACKS=b1=127.0.0.1:1143/127.0.0.1:2424/127.0.0.1:8080, b2=[::1]:1143/[::1]:2424/[::1]:8080"))
	if err != nil {
		t.Fatalf("front: %v", err)
	}
	backs, err := front.clusterBacks()
	if err != nil || len(backs) != 2 || backs[1] != (backNode{Name: "b2", IMAP: "[::1]:1143", LMTP: "[::1]:2424", HTTP: "[::1]:8080"}) {
		t.Fatalf("backs %+v, %v", backs, err)
	}

	// A back listed twice is an active and a standby; thrice is a
	// mistake.
	pair, err := loadConfig("", append(base, "EGRET_NODE_ROLE=front",
		"EGRET_CLUSTER_BACKS=b1=127.0.0.1:1143/127.0.0.1:2424/127.0.0.1:8080,"+
			"b2=127.0.0.1:2143/127.0.0.1:3424/127.0.0.1:9080,b1=127.0.0.2:1143/127.0.0.2:2424/127.0.0.2:8080"))
	if err != nil {
		t.Fatalf("front with a standby back: %v", err)
	}
	members, err := pair.clusterMembers()
	if err != nil || len(members) != 3 || members[0].Member != "b1/1" || members[1].Member != "" ||
		members[2].Member != "b1/2" || members[2].IMAP != "127.0.0.2:1143" {
		t.Fatalf("members %+v, %v", members, err)
	}
	if backs, err := pair.clusterBacks(); err != nil || len(backs) != 2 || backs[0].Name != "b1" || backs[1].Name != "b2" {
		t.Fatalf("backs with a standby %+v, %v", backs, err)
	}
	_, err = loadConfig("", append(base, "EGRET_NODE_ROLE=front",
		"EGRET_CLUSTER_BACKS=b1=127.0.0.1:1143/127.0.0.1:2424/127.0.0.1:8080,"+
			"b1=127.0.0.2:1143/127.0.0.2:2424/127.0.0.2:8080,b1=127.0.0.3:1143/127.0.0.3:2424/127.0.0.3:8080"))
	if err == nil || !strings.Contains(err.Error(), "more than twice") {
		t.Fatalf("a back listed thrice: %v, want refused", err)
	}
	if _, err := loadConfig("", append(base, "EGRET_NODE_ROLE=back", "EGRET_LMTP_ADDR=10.0.0.5:2424")); err != nil {
		t.Fatalf("a back may take LMTP on a private address: %v", err)
	}
	src, err := front.proxySources()
	if err != nil || len(src) != 2 {
		t.Fatalf("default proxy sources %v, %v", src, err)
	}
}

func TestExampleConfigShowsTheDefaults(t *testing.T) {
	fromFile, err := loadConfig("../../docs/egret.example.toml", nil)
	if err != nil {
		t.Fatal(err)
	}
	defaults, _ := loadConfig("", nil)
	if fromFile != defaults {
		t.Fatalf("docs/egret.example.toml says\n%+v\nbut the defaults are\n%+v", fromFile, defaults)
	}
}

func TestMisspeltEnvironmentVariablesAreFound(t *testing.T) {
	got := unknownEnv([]string{
		"EGRET_SMTP_ADDR=127.0.0.1:1",
		"EGRET_SMTP_ADRR=127.0.0.1:2",
		"EGRET_CONFIG=/etc/egret.toml",
		"EGRET_TEST_MYSQL_DSN=root@tcp(127.0.0.1:3306)/",
		"HOME=/root",
	})
	if len(got) != 1 || got[0] != "EGRET_SMTP_ADRR" {
		t.Fatalf("unknown variables: %v, want [EGRET_SMTP_ADRR]", got)
	}
}
