package api

import (
	"net"
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/egretair/egret/directory"
)

// The directory's databases, one series each, labelled by database
// ("primary", "replica1", ...) and role ("primary" or "replica").
var (
	dbUpDesc = prometheus.NewDesc("egret_database_up",
		"1 while the database answers its health check.", []string{"database", "role"}, nil)
	dbServesReadsDesc = prometheus.NewDesc("egret_database_serves_reads",
		"1 for the database that lag-tolerant reads go to first.", []string{"database", "role"}, nil)
	dbServesWritesDesc = prometheus.NewDesc("egret_database_serves_writes",
		"1 while the database takes writes: the primary, when up.", []string{"database", "role"}, nil)
	dbLagDesc = prometheus.NewDesc("egret_database_replica_lag_seconds",
		"Seconds_Behind_Master of a replica; -1 when unknown.", []string{"database"}, nil)
	dbBehindDesc = prometheus.NewDesc("egret_database_replica_behind",
		"1 while a replica trails beyond the allowed lag or does not replicate.", []string{"database"}, nil)
	dbReadsDesc = prometheus.NewDesc("egret_database_reads_total",
		"Reads the database answered that may trail the primary (address and list lookups), "+
			"and access checks a replica answered while the primary was down.", []string{"database", "role"}, nil)
)

// databaseHealth answers the health of the process's directory
// databases; WatchDatabases sets it.
var databaseHealth atomic.Pointer[func() []directory.DatabaseHealth]

// WatchDatabases makes /metrics report the databases that health
// describes (directory.Store.Health). The last call wins.
func WatchDatabases(health func() []directory.DatabaseHealth) {
	databaseHealth.Store(&health)
}

// databaseCollector reads the databases' health at each scrape.
type databaseCollector struct{}

func (databaseCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dbUpDesc, dbServesReadsDesc,
		dbServesWritesDesc, dbLagDesc, dbBehindDesc, dbReadsDesc} {
		ch <- d
	}
}

func (databaseCollector) Collect(ch chan<- prometheus.Metric) {
	health := databaseHealth.Load()
	if health == nil {
		return
	}
	flag := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	for _, h := range (*health)() {
		gauge := func(d *prometheus.Desc, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
		}
		gauge(dbUpDesc, flag(h.Up), h.Name, h.Role)
		gauge(dbServesReadsDesc, flag(h.ServesReads), h.Name, h.Role)
		gauge(dbServesWritesDesc, flag(h.ServesWrites), h.Name, h.Role)
		if h.Role == directory.RoleReplica {
			gauge(dbLagDesc, h.LagSeconds, h.Name)
			gauge(dbBehindDesc, flag(h.Behind), h.Name)
		}
		ch <- prometheus.MustNewConstMetric(dbReadsDesc, prometheus.CounterValue,
			float64(h.Reads), h.Name, h.Role)
	}
}

// Registry holds the process's Prometheus series; the services that
// produce them (the LDAP mirror, ...) register here, and GET /metrics
// serves it.
var Registry = func() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		databaseCollector{})
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
