// Package web is the operator console: a browser page that joins a session
// with a token, drives a robot (joystick, keyboard, gamepad with a deadman),
// sends e-stop, clear and lease requests, and shows acks, telemetry and the
// agent's status. The page is plain HTML, CSS and ES modules under static/,
// embedded with embed.FS; Handler serves them with a strict Content-Security-
// Policy. It speaks docs/signaling-protocol.md to the relay it is served by,
// which mounts Handler as relay.Options.Fallback. docs/console.md describes it.
package web
