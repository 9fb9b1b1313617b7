// Package interop tests teleop against the official OpenTok Node server SDK (npm
// "opentok", pinned in testdata/node/package-lock.json, driven by testdata/node/interop.js):
// SDK tokens verify with signaling/token, the SDK accepts our session IDs, its REST calls
// have the documented shapes, and the loop SDK → real relay → Go WebSocket clients works.
// Tests skip, saying why, only when node or testdata/node/node_modules is absent.
package interop
