package api

import (
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Registry holds the process's Prometheus series; the services that
// produce them (the LDAP mirror, ...) register here, and GET /metrics
// serves it.
var Registry = func() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}()

// metrics serves Registry in the Prometheus text format to loopback
// clients only: the series name units and counts that an outsider has
// no business reading, and a scraper runs on the node.
func (s *Server) metrics() http.Handler {
	h := promhttp.HandlerFor(Registry, promhttp.HandlerOpts{})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			writeError(w, http.StatusForbidden, codeForbidden, "metrics are served to loopback clients only")
			return
		}
		h.ServeHTTP(w, r)
	})
}
