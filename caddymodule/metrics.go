package caddymodule

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/idlegate/idlegate/idletrack"
	"github.com/idlegate/idlegate/storage"
)

// metrics are created once per process and registered with the registry of
// every config (ctx.GetMetricsRegistry()), so they survive reloads and show
// on Caddy's own /metrics. Never the global default registry.
var metrics struct {
	once       sync.Once
	active     prometheus.Collector
	ended      *prometheus.CounterVec
	rejected   *prometheus.CounterVec
	deliveries *prometheus.CounterVec
	pending    prometheus.GaugeFunc
	memory     prometheus.GaugeFunc
	lag        prometheus.Histogram
	storeErrs  *prometheus.CounterVec
}

func initMetrics(reg *prometheus.Registry) {
	const ns, sub = "caddy", "idle_session"
	metrics.once.Do(func() {
		metrics.active = activeCollector{prometheus.NewDesc(ns+"_"+sub+"_active",
			"Sessions being tracked, by zone.", []string{"zone"}, nil)}
		metrics.ended = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "ended_total",
			Help: "Sessions ended, by zone and reason (idle, absolute, logout, revoked).",
		}, []string{"zone", "reason"})
		metrics.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "rejected_total",
			Help: "Requests refused, by zone and reason: the session ended (idle, absolute, logout, revoked), a rotated-away value (rotated), the session cookie spelled as no browser sends it (cookie_spelling) or read two ways (cookie_conflict), an ended session issued again by the upstream (reissued).",
		}, []string{"zone", "reason"})
		metrics.deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "webhook_deliveries_total",
			Help: "Webhook delivery attempts, by outcome (success, failure, dead).",
		}, []string{"outcome"})
		metrics.pending = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "webhook_pending",
			Help: "Webhook events waiting in the outbox.",
		}, pendingEvents)
		metrics.memory = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "memory_bytes",
			Help: "Memory mapped for the session tables outside the Go heap: part of the process's resident memory, not of Go's heap metrics or GOMEMLIMIT.",
		}, func() float64 { return float64(idletrack.OffHeapBytes()) })
		metrics.lag = prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "webhook_lag_seconds",
			Help:    "Time from the end of a session to the successful delivery of its webhook.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600},
		})
		metrics.storeErrs = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "store_errors_total",
			Help: "Failed store operations, by operation; writes are retried.",
		}, []string{"op"})
	})
	for _, c := range []prometheus.Collector{metrics.active, metrics.ended, metrics.rejected,
		metrics.deliveries, metrics.pending, metrics.memory, metrics.lag, metrics.storeErrs} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				panic(err)
			}
		}
	}
}

// Label values the counters start with at 0, so that rate() and increase()
// see the first event of each (a series born at 1 looks like no change).
var (
	endReasons    = []string{"idle", "absolute", "logout", "revoked"}
	refuseReasons = []string{"idle", "absolute", "logout", "revoked", "rotated", "cookie_spelling", "cookie_conflict", "reissued"}
	outcomes      = []string{"success", "failure", "dead"}
)

// initZoneMetrics creates zone's counter series at 0.
func initZoneMetrics(zone string) {
	for _, r := range endReasons {
		metrics.ended.WithLabelValues(zone, r)
	}
	for _, r := range refuseReasons {
		metrics.rejected.WithLabelValues(zone, r)
	}
	for _, o := range outcomes {
		metrics.deliveries.WithLabelValues(o)
	}
}

// activeCollector reads the number of active sessions from the trackers at
// scrape time, so the gauge can never drift from the truth.
type activeCollector struct{ desc *prometheus.Desc }

func (c activeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c activeCollector) Collect(ch chan<- prometheus.Metric) {
	byZone := map[string]int{}
	engines.Range(func(_, v any) bool {
		for _, z := range v.(*sharedEngine).engine.Zones() {
			byZone[z.Name()] += z.Tracker().Established()
		}
		return true
	})
	for zone, n := range byZone {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), zone)
	}
}

// pendingEvents sums the outbox of every running store.
func pendingEvents() float64 {
	n := 0
	engines.Range(func(_, v any) bool {
		if p, _, err := v.(*sharedEngine).store.OutboxStats(context.Background()); err == nil {
			n += p
		}
		return true
	})
	return float64(n)
}

// engineObserver reports engine events as metrics and log lines, and closes
// the WebSockets of sessions that end.
type engineObserver struct {
	log *zap.Logger
	ws  *wsRegistry
}

func (o engineObserver) SessionEnded(e idletrack.End) {
	o.ws.ended(e.Zone, e.Session.ID, e.Reason)
	metrics.ended.WithLabelValues(e.Zone, string(e.Reason)).Inc()
	o.log.Info("session ended",
		zap.String("session", e.Session.ID.Short()),
		zap.String("zone", e.Zone),
		zap.String("user", e.Session.User),
		zap.String("reason", string(e.Reason)),
		zap.Int64("duration_seconds", e.DurationSeconds()),
		zap.Uint32("requests", e.Session.Requests),
	)
}

func (o engineObserver) StoreError(op string, _ error) {
	metrics.storeErrs.WithLabelValues(op).Inc()
}

func (o engineObserver) StoreRecovered() {}

// deliveryObserver reports webhook deliveries as metrics.
type deliveryObserver struct{}

func (deliveryObserver) Delivered(_ storage.Event, lag time.Duration) {
	metrics.deliveries.WithLabelValues("success").Inc()
	metrics.lag.Observe(lag.Seconds())
}

func (deliveryObserver) Failed(storage.Event, error) {
	metrics.deliveries.WithLabelValues("failure").Inc()
}

func (deliveryObserver) Dead(storage.Event) {
	metrics.deliveries.WithLabelValues("dead").Inc()
}
