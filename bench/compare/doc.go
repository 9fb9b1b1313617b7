// Package compare measures `teleop server` side by side with what users would
// pick instead, mosquitto (MQTT) and nats-server (NATS core), on loopback.
//
// Run starts each server as a process of its own on a free 127.0.0.1 port
// (servers.go), drives the same workloads through it with one Go client per
// protocol (clients.go: gorilla/websocket, eclipse paho, nats.go), stops it
// by its PID, and returns one Result: 1→1 latency at a fixed rate, 1→N
// fan-out throughput, and server RSS per idle connection (workloads.go).
// WriteText prints the table with each peer's ratio to teleop server;
// WriteChart draws the latency distributions as a PNG.
package compare
