package ldapmirror

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the mirror's Prometheus series.
type Metrics struct {
	// LagRows is how many change-log rows wait to be applied.
	LagRows prometheus.Gauge
	// LagSeconds is the age of the oldest row waiting, 0 when none.
	LagSeconds prometheus.Gauge
	// Cursor is the last change-log row applied.
	Cursor prometheus.Gauge
	// Entries counts entries written, by action: "add", "modify",
	// "move", "delete".
	Entries *prometheus.CounterVec
	// Failures counts batches and passes that failed and were retried.
	Failures prometheus.Counter
	// Passes counts full passes, by cause: "start", "backlog",
	// "recovery", "reconcile".
	Passes *prometheus.CounterVec
}

// NewMetrics makes the mirror's series and registers them on reg (none
// when reg is nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		LagRows: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "egret_ldap_mirror_lag_rows",
			Help: "Change-log rows not yet applied to LDAP.",
		}),
		LagSeconds: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "egret_ldap_mirror_lag_seconds",
			Help: "Age of the oldest change-log row not yet applied to LDAP.",
		}),
		Cursor: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "egret_ldap_mirror_cursor",
			Help: "Last change-log row applied to LDAP.",
		}),
		Entries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "egret_ldap_mirror_entries_total",
			Help: "LDAP entries written by the mirror.",
		}, []string{"action"}),
		Failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "egret_ldap_mirror_failures_total",
			Help: "Mirror batches and passes that failed and were retried.",
		}),
		Passes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "egret_ldap_mirror_full_passes_total",
			Help: "Full passes comparing the whole directory with LDAP.",
		}, []string{"cause"}),
	}
	if reg != nil {
		reg.MustRegister(m.LagRows, m.LagSeconds, m.Cursor, m.Entries, m.Failures, m.Passes)
	}
	return m
}
