package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/berthpaas/berth/cluster/raftnode"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus metrics, in a registry of its own so
// several servers can live in one process (tests) without sharing globals.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// ApplyHistogram is the raft apply latency histogram; the server registers
// it and feeds it from raftnode.Config.OnApply.
func ApplyHistogram(reg *prometheus.Registry) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "berth_raft_apply_duration_seconds", Help: "Time to commit and apply one raft command on the leader.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	})
	reg.MustRegister(h)
	return h
}

func newMetrics(reg *prometheus.Registry, node *raftnode.Node) *metrics {
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_api_requests_total", Help: "API requests by route, method and status code.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "berth_api_request_duration_seconds", Help: "API request latency by route.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"route"}),
	}
	stat := func(f func(raftnode.Stats) float64) func() float64 {
		return func() float64 { return f(node.Stats()) }
	}
	reg.MustRegister(m.requests, m.latency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "berth_raft_leader", Help: "1 if this server is the raft leader."},
			func() float64 {
				if node.IsLeader() {
					return 1
				}
				return 0
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "berth_raft_term", Help: "Current raft term."},
			stat(func(s raftnode.Stats) float64 { return float64(s.Term) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "berth_raft_commit_index", Help: "Raft commit index."},
			stat(func(s raftnode.Stats) float64 { return float64(s.CommitIndex) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "berth_raft_applied_index", Help: "Raft index applied to the FSM."},
			stat(func(s raftnode.Stats) float64 { return float64(s.AppliedIndex) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "berth_raft_last_snapshot_index", Help: "Index of the last raft snapshot."},
			stat(func(s raftnode.Stats) float64 { return float64(s.LastSnapshotIndex) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "berth_raft_last_contact_seconds", Help: "Time since this follower heard from the leader (0 on the leader, -1 if never)."},
			stat(func(s raftnode.Stats) float64 {
				if s.LastContact < 0 {
					return -1
				}
				return s.LastContact.Seconds()
			})),
	)
	return m
}

func (m *metrics) observe(route, method string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route).Observe(d.Seconds())
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
