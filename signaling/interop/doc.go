// Package interop holds the tests that run teleop against the official OpenTok Node
// server SDK (npm "opentok", pinned in testdata/node/package-lock.json and driven by
// testdata/node/interop.js): SDK tokens verify with signaling/token, our session IDs
// are accepted by the SDK, and the SDK's REST calls have the shapes the relay serves.
// The tests skip, saying why, only when node or testdata/node/node_modules is absent.
package interop
