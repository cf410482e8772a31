package mailcore

import (
	"fmt"
	"log/slog"
)

// ServerLog passes a protocol library's own reports about connections
// (go-smtp's ErrorLog, go-imap's Logger) to slog. They are the clients'
// misbehaviour or a connection cut at shutdown, not the server's, so
// they go out at debug level, with the service named.
type ServerLog struct {
	Log     *slog.Logger
	Service string
}

// Printf logs one report.
func (l ServerLog) Printf(format string, v ...any) {
	l.Log.Debug("connection error", "service", l.Service, "detail", fmt.Sprintf(format, v...))
}

// Println logs one report.
func (l ServerLog) Println(v ...any) {
	l.Log.Debug("connection error", "service", l.Service, "detail", fmt.Sprint(v...))
}
