package router

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics lives in the Router's own registry, not Caddy's global one, so
// two routers (or a router and the control plane) never collide.
type metrics struct {
	reg *prometheus.Registry

	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	upstreamErrors *prometheus.CounterVec
	unknownHost    prometheus.Counter
	swaps          prometheus.Counter
	routes         prometheus.Gauge
	sourceErrors   prometheus.Counter
	sourceLive     prometheus.Gauge

	mu   sync.Mutex
	apps map[string]*appMetrics
}

// appMetrics are one app's series, resolved once per table build so a
// request never looks up labels.
type appMetrics struct {
	byClass        [6]prometheus.Counter // index status/100; 0 for anything odd
	duration       prometheus.Observer
	upstreamErrors prometheus.Counter
}

func newMetrics(reg *prometheus.Registry) *metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_router_requests_total",
			Help: "Requests routed to an app, by status class (2xx, 5xx, ...).",
		}, []string{"app", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "berth_router_request_duration_seconds",
			Help:    "Time from request to the end of the response, per app.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"app"}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_router_upstream_errors_total",
			Help: "Connection-level failures talking to an app's upstreams (retried or not).",
		}, []string{"app"}),
		unknownHost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_router_unknown_host_requests_total",
			Help: "Requests for a host no app answers on (404, no upstream contacted).",
		}),
		swaps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_router_table_swaps_total",
			Help: "Route tables swapped in.",
		}),
		routes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "berth_router_routes",
			Help: "Apps in the current route table.",
		}),
		sourceErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_router_source_errors_total",
			Help: "Times the route source failed; the last table kept serving.",
		}),
		sourceLive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "berth_router_source_live",
			Help: "1 once the route source has delivered a table, 0 while serving from the state file.",
		}),
		apps: map[string]*appMetrics{},
	}
	reg.MustRegister(m.requests, m.duration, m.upstreamErrors, m.unknownHost, m.swaps, m.routes, m.sourceErrors, m.sourceLive)
	return m
}

var classLabels = [6]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}

func (m *metrics) forApp(app string) *appMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	if am, ok := m.apps[app]; ok {
		return am
	}
	am := &appMetrics{
		duration:       m.duration.WithLabelValues(app),
		upstreamErrors: m.upstreamErrors.WithLabelValues(app),
	}
	for i, c := range classLabels {
		am.byClass[i] = m.requests.WithLabelValues(app, c)
	}
	m.apps[app] = am
	return am
}

func (am *appMetrics) observe(status int, seconds float64, upErrors int) {
	if am == nil {
		return
	}
	c := status / 100
	if c < 1 || c > 5 {
		c = 0
	}
	am.byClass[c].Inc()
	am.duration.Observe(seconds)
	if upErrors > 0 {
		am.upstreamErrors.Add(float64(upErrors))
	}
}
