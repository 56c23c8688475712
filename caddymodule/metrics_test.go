package caddymodule

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestZoneCountersStartAtZero: a counter series born at 1 is invisible to
// rate() and increase(), so the first end, refusal or dead letter of a
// zone would never show on a dashboard or fire an alert.
func TestZoneCountersStartAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	initMetrics(reg)
	initZoneMetrics("fresh_zone")
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{
		"caddy_idle_session_ended_total":              len(endReasons),
		"caddy_idle_session_rejected_total":           len(refuseReasons),
		"caddy_idle_session_webhook_deliveries_total": len(outcomes),
	}
	for _, f := range fams {
		n, ok := want[f.GetName()]
		if !ok {
			continue
		}
		got := 0
		for _, m := range f.GetMetric() {
			zone := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "zone" {
					zone = l.GetValue()
				}
			}
			if zone == "fresh_zone" || zone == "" && f.GetName() == "caddy_idle_session_webhook_deliveries_total" {
				got++
			}
		}
		if got < n {
			t.Errorf("%s: %d series for a fresh zone; want %d, at 0", f.GetName(), got, n)
		}
		delete(want, f.GetName())
	}
	for name := range want {
		t.Errorf("%s: no series at all for a fresh zone", name)
	}
}
