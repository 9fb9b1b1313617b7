package bridge

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// agentMetrics are the agent's Prometheus metrics (docs/agent.md lists
// them). Signal types are labels only for mapped types, so a sender cannot
// grow the label set.
type agentMetrics struct {
	signals           *prometheus.CounterVec   // type, outcome
	ackLatency        prometheus.Histogram     // bridge time of acks
	deviceRTT         *prometheus.HistogramVec // device
	sessionReconnects *prometheus.CounterVec   // resumed
	deviceReconnects  *prometheus.CounterVec   // device
	watchdogTrips     *prometheus.CounterVec   // device
	estops            *prometheus.CounterVec   // source: signal, device
	deadmanStops      *prometheus.CounterVec   // device
	outputErrors      *prometheus.CounterVec   // type of the agent's own signal
	deviceUp          *prometheus.GaugeVec     // device
	estopLatched      prometheus.Gauge
	leaseHeld         prometheus.Gauge
}

// latencyBuckets span 50 µs to 2.5 s.
var latencyBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}

func newAgentMetrics(reg *prometheus.Registry, private bool) (*agentMetrics, error) {
	m := &agentMetrics{
		signals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "teleop_agent_signals_total",
			Help: "Signals received, by type (mapped types; others are \"unmapped\") and outcome (the ack status, or ignored).",
		}, []string{"type", "outcome"}),
		ackLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "teleop_agent_ack_latency_seconds",
			Help:    "Time from reading a signal to queuing its ack (bridge_ms), device round trip included.",
			Buckets: latencyBuckets,
		}),
		deviceRTT: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "teleop_agent_device_rtt_seconds",
			Help:    "Device round trip of answered commands: last write to reply (device_ms).",
			Buckets: latencyBuckets,
		}, []string{"device"}),
		sessionReconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "teleop_agent_session_reconnects_total",
			Help: "Session reconnections; resumed=false means a new connection (the relay's grace ran out or it restarted).",
		}, []string{"resumed"}),
		deviceReconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "teleop_agent_device_reconnects_total",
			Help: "Times a device became ready again after its first handshake (replug, reset, silence).",
		}, []string{"device"}),
		watchdogTrips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "teleop_agent_watchdog_trips_total",
			Help: "Device watchdog expiries (EVT WDOG).",
		}, []string{"device"}),
		estops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "teleop_agent_estops_total",
			Help: "E-stops latched: by an estop signal, or reported by the device itself.",
		}, []string{"source"}),
		deadmanStops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "teleop_agent_deadman_stops_total",
			Help: "Stops sent because no setpoint came within the deadman.",
		}, []string{"device"}),
		outputErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "teleop_agent_output_errors_total",
			Help: "Signals the agent could not send (ack, telemetry, status), including those dropped on a full queue.",
		}, []string{"type"}),
		deviceUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "teleop_agent_device_up",
			Help: "1 while the device is ready, failsafe or e-stopped (its link is up).",
		}, []string{"device"}),
		estopLatched: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "teleop_agent_estop_latched",
			Help: "1 while an e-stop is latched on any device.",
		}),
		leaseHeld: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "teleop_agent_lease_held",
			Help: "1 while a connection holds the exclusive lease.",
		}),
	}
	cs := []prometheus.Collector{m.signals, m.ackLatency, m.deviceRTT, m.sessionReconnects, m.deviceReconnects,
		m.watchdogTrips, m.estops, m.deadmanStops, m.outputErrors, m.deviceUp, m.estopLatched, m.leaseHeld}
	if private {
		cs = append(cs, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
