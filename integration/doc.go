// Package integration tests egret end to end: the real binary, built
// from ./cmd/egret, started as a child process on loopback ports and
// driven the way operators and users drive it, through its CLI, its HTTP
// API and ordinary mail clients.
//
// Each test runs on every database kind (SQLite, and MariaDB on a fresh
// database from package dirtest) and, in order:
//
//	serve     egret serve on free 127.0.0.1 ports, ready once /healthz says 200
//	import    the full OA fixture, through the CLI and through the API
//	re-import the same snapshot again, which must change nothing
//	password  egret user passwd for one person of the fixture
//	mail      clients/mail_roundtrip.py (Python's smtplib and imaplib) sends
//	          every message in testdata/mail and reads each back byte for byte
//	stop      SIGTERM, and the process must exit 0
//
// The package holds tests only. Run it with the rest through scripts/test,
// which provides the MariaDB server, or alone:
//
//	scripts/test -run . ./integration/
package integration
