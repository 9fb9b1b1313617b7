#!/usr/bin/env node
// interop.js drives the official OpenTok Node server SDK (npm "opentok", pinned in
// package-lock.json) for teleop's Go interop tests in signaling/interop.
//
// Input: one JSON command, or an array of them, on stdin (or as the first argument).
// Output: one JSON line on stdout: the result, or an array of results in order.
// Every result is {"ok": true, ...} or {"ok": false, "error": "<SDK message>", "name": "<Error class>"}.
// The exit status is 0 whenever results were printed; 2 when the input was unusable.
//
// Commands (apiKey and apiSecret are always required; apiUrl for REST calls):
//   {"op":"version"}                                             → {version}
//   {"op":"generateToken", sessionId, role?, data?, expireTime?, legacy?}
//                                                                → {token}   (legacy: T1 format)
//   {"op":"generateJwt"}                                         → {token}   (the REST X-OPENTOK-AUTH JWT)
//   {"op":"createSession", apiUrl, mediaMode?, archiveMode?, location?}
//                                                                → {sessionId}
//   {"op":"signal", apiUrl, sessionId, connectionId?, type?, data?}
//                                                                → {}        (connectionId absent/"" = to all)
//   {"op":"forceDisconnect", apiUrl, sessionId, connectionId}    → {}
'use strict';

const OpenTok = require('opentok');
const sdkVersion = require('opentok/package.json').version;

function client(cmd) {
  const env = {};
  if (cmd.apiUrl) env.apiUrl = cmd.apiUrl;
  if (cmd.timeout) env.timeout = cmd.timeout;
  return new OpenTok(cmd.apiKey, cmd.apiSecret, env);
}

// pending rejects the SDK call in flight (commands run one at a time). opentok 2.23.2's
// signal and forceDisconnect read response.status in their fetch error path, where
// response is null: the TypeError becomes an unhandled rejection that would kill the
// process and never call back. It is reported as that command's error instead.
let pending = null;
process.on('unhandledRejection', (err) => {
  if (!pending) throw err;
  pending(err);
});

// call adapts the SDK's (err, value) callbacks to a promise.
function call(fn) {
  return new Promise((resolve, reject) => {
    pending = reject;
    fn((err, value) => {
      pending = null;
      if (err) reject(err);
      else resolve(value);
    });
  });
}

const ops = {
  async version() {
    return { version: sdkVersion };
  },

  async generateToken(cmd) {
    const opts = {};
    if (cmd.role !== undefined) opts.role = cmd.role;
    if (cmd.data !== undefined) opts.data = cmd.data;
    if (cmd.expireTime !== undefined) opts.expireTime = cmd.expireTime;
    return { token: client(cmd).generateToken(cmd.sessionId, opts, Boolean(cmd.legacy)) };
  },

  async generateJwt(cmd) {
    return { token: client(cmd).generateJwt() };
  },

  async createSession(cmd) {
    const opts = {};
    for (const k of ['mediaMode', 'archiveMode', 'location']) {
      if (cmd[k] !== undefined) opts[k] = cmd[k];
    }
    const session = await call((cb) => client(cmd).createSession(opts, cb));
    return { sessionId: session.sessionId };
  },

  async signal(cmd) {
    // Only the fields given are sent, so tests can send a typeless or dataless signal.
    const payload = {};
    if (cmd.type !== undefined) payload.type = cmd.type;
    if (cmd.data !== undefined) payload.data = cmd.data;
    await call((cb) => client(cmd).signal(cmd.sessionId, cmd.connectionId || null, payload, cb));
    return {};
  },

  async forceDisconnect(cmd) {
    await call((cb) => client(cmd).forceDisconnect(cmd.sessionId, cmd.connectionId, cb));
    return {};
  },
};

async function run(cmd) {
  try {
    const op = cmd && ops[cmd.op];
    if (!op) throw new Error('unknown op ' + JSON.stringify(cmd && cmd.op));
    return { ok: true, ...(await op(cmd)) };
  } catch (err) {
    return { ok: false, error: String(err && err.message ? err.message : err), name: err && err.name };
  }
}

async function main() {
  let text = process.argv[2];
  if (text === undefined) {
    const chunks = [];
    for await (const chunk of process.stdin) chunks.push(chunk);
    text = Buffer.concat(chunks).toString('utf8');
  }
  let input;
  try {
    input = JSON.parse(text);
  } catch (err) {
    process.stderr.write('interop.js: input is not JSON: ' + err.message + '\n');
    process.exit(2);
  }
  let out;
  if (Array.isArray(input)) {
    out = [];
    for (const cmd of input) out.push(await run(cmd)); // in order: REST calls are sequential
  } else {
    out = await run(input);
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main();
