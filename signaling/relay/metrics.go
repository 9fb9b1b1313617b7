package relay

import (
	"fmt"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the relay's Prometheus series, all prefixed teleop_relay_.
type metrics struct {
	connections atomic.Int64 // connections in sessions, including those in their grace period
	sockets     atomic.Int64 // open WebSockets
	sessions    atomic.Int64
	// A cluster node's: connections of other nodes in its sessions.
	remoteConnections atomic.Int64

	signalsIn     *prometheus.CounterVec // by via: ws, rest
	signalsInWS   prometheus.Counter     // signalsIn{via="ws"}, looked up once: it counts every signal
	signalsOut    prometheus.Counter     // signal frames written to sockets
	dropped       prometheus.Counter     // events evicted from a replay buffer before they were written
	resumes       prometheus.Counter
	rateLimited   prometheus.Counter
	slowConsumers prometheus.Counter
	authFailures  *prometheus.CounterVec // by api: connect, rest
	closes        *prometheus.CounterVec // sockets closed, by reason

	clusterUp        prometheus.Gauge   // 1 while connected to NATS
	clusterNodes     prometheus.Gauge   // nodes alive, this one included
	clusterDropped   prometheus.Counter // events not published (NATS down)
	clusterTakeovers prometheus.Counter // connections resumed from another node
}

// newMetrics registers the relay's series on reg; a registry can hold one
// relay's.
func newMetrics(reg *prometheus.Registry, private, clustered bool) (*metrics, error) {
	m := &metrics{
		signalsIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "teleop_relay_signals_received_total",
			Help: "Signals accepted for delivery (code 200), by API (ws, rest).",
		}, []string{"via"}),
		signalsOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "teleop_relay_signals_delivered_total",
			Help: "Signal frames written to receivers' sockets (a broadcast counts once per receiver).",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "teleop_relay_replay_dropped_total",
			Help: "Events evicted from a connection's replay buffer before they were written to a socket.",
		}),
		resumes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "teleop_relay_resumes_total",
			Help: "Connections resumed on a new socket.",
		}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "teleop_relay_rate_limited_total",
			Help: "Sends refused with code 429.",
		}),
		slowConsumers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "teleop_relay_slow_consumers_total",
			Help: "Sockets closed with 4008 because their send queue filled.",
		}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "teleop_relay_auth_failures_total",
			Help: "Refused tokens (connect) and refused REST credentials (rest).",
		}, []string{"api"}),
		closes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "teleop_relay_socket_closes_total",
			Help: "WebSockets closed, by reason.",
		}, []string{"reason"}),
	}
	m.signalsInWS = m.signalsIn.WithLabelValues("ws")
	m.clusterUp = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "teleop_relay_cluster_connected",
		Help: "1 while this cluster node is connected to NATS (and in sync); 0 while it serves its own connections only.",
	})
	m.clusterNodes = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "teleop_relay_cluster_nodes",
		Help: "Cluster nodes alive as this node sees them, itself included.",
	})
	m.clusterDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "teleop_relay_cluster_unpublished_total",
		Help: "Session events not sent to the other nodes because NATS was unreachable.",
	})
	m.clusterTakeovers = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "teleop_relay_cluster_takeovers_total",
		Help: "Connections of another node resumed on this one.",
	})
	gauge := func(name, help string, v *atomic.Int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help},
			func() float64 { return float64(v.Load()) })
	}
	cs := []prometheus.Collector{
		gauge("teleop_relay_connections", "Connections in sessions, including those in their grace period.", &m.connections),
		gauge("teleop_relay_sockets", "Open WebSockets.", &m.sockets),
		gauge("teleop_relay_sessions", "Sessions with at least one connection.", &m.sessions),
		m.signalsIn, m.signalsOut, m.dropped, m.resumes, m.rateLimited, m.slowConsumers, m.authFailures, m.closes,
	}
	if clustered {
		cs = append(cs, m.clusterUp, m.clusterNodes, m.clusterDropped, m.clusterTakeovers,
			gauge("teleop_relay_cluster_remote_connections", "Connections of other nodes in the sessions this node knows.", &m.remoteConnections))
	}
	if private {
		cs = append(cs, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register relay metrics: %w", err)
		}
	}
	return m, nil
}
