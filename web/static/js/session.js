// session.js — a client of the teleop session protocol
// (docs/signaling-protocol.md): one WebSocket at a time, the welcome, signals
// with results by id, events deduplicated by seq, resume after a dropped
// socket (resume + last), backoff with jitter, and human words for refusals.
//
// Events (CustomEvent, details in brackets):
//   state       {state, detail, code}   idle → connecting → connected ⇄ reconnecting → disconnected
//   welcome     {resumed, fresh, missed}  fresh: a new connection replaced one whose grace ended
//   signal      {type, data, from, to, seq, ageMs}
//   connections {kind: 'created'|'destroyed'|'welcome', connection, reason}
//   rtt         {ms}                     round trip of the relay's pong
//   log         {level, text}

export const State = Object.freeze({
  IDLE: 'idle',
  CONNECTING: 'connecting',
  CONNECTED: 'connected',
  RECONNECTING: 'reconnecting',
  DISCONNECTED: 'disconnected',
});

// The relay remembers the outcome of the last 256 ids; never have more in flight.
export const MAX_PENDING = 256;

// Close codes after which reconnecting cannot help (§8), with what to tell the operator.
const permanent = {
  1000: () => 'You left the session.',
  4401: (msg) => `Your token was refused: ${msg || 'no reason given'}. Get a new token and join again.`,
  4403: (msg) => `Your token's role may not connect${msg ? ` (${msg})` : ''}.`,
  4409: () => 'This connection was taken over by another window.',
  4410: () => 'You were removed from the session by a moderator (force-disconnected).',
};

// backoffDelay is the wait before reconnect attempt n (0-based): 250 ms
// doubling to 5 s, ±20 % jitter, as the Go client does.
export function backoffDelay(n, { initial = 250, max = 5000, jitter = 0.2 } = {}, rand = Math.random) {
  const base = Math.min(max, initial * 2 ** Math.min(n, 30));
  return Math.round(base * (1 + (rand() * 2 - 1) * jitter));
}

export class SignalError extends Error {
  constructor(code, message) {
    super(message || `code ${code}`);
    this.code = code;
  }
}

// connectURL is the WebSocket URL of /v1/connect relative to the page, so a
// console served under a path prefix finds the relay under the same prefix.
export function connectURL(base = location.href) {
  const u = new URL('v1/connect', base);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  u.hash = '';
  u.search = '';
  return u.toString();
}

export class Session extends EventTarget {
  constructor({ url, token, pingEvery = 2000, deadAfter = 6000, backoff = {} }) {
    super();
    this.url = url;
    this.token = token;
    this.pingEvery = pingEvery;
    this.deadAfter = deadAfter;
    this.backoff = backoff;

    this.state = State.IDLE;
    this.detail = '';
    this.sessionId = '';
    this.role = '';
    this.me = null; // this client's connection
    this.connections = new Map(); // connectionId → connection, oldest first
    this.limits = {};

    this.ws = null; // the current socket; events of older sockets are ignored
    this.resumeKey = '';
    this.lastSeq = 0; // highest event seq processed
    this.nextId = 0;
    this.pending = new Map(); // id → {frame, resolve, reject, retry, queuedAt}
    this.attempt = 0;
    this.retryTimer = null;
    this.pingTimer = null;
    this.lastRx = 0;
    this.pings = new Map();
    this.leaving = false;
    this.onOnline = () => this.retryNow();
  }

  connect() {
    if (this.state !== State.IDLE && this.state !== State.DISCONNECTED) return;
    this.leaving = false;
    this.attempt = 0;
    this.me = null;
    this.resumeKey = '';
    this.lastSeq = 0;
    window.addEventListener('online', this.onOnline);
    this.setState(State.CONNECTING, '');
    this.open();
  }

  // leave ends this connection for good: the relay tells the others at once.
  leave() {
    this.leaving = true;
    if (this.ws && this.ws.readyState === WebSocket.OPEN && this.state === State.CONNECTED) {
      this.ws.send(JSON.stringify({ op: 'disconnect' }));
      return; // the relay answers disconnected, then close 1000
    }
    this.finish(1000, '');
  }

  // retryNow skips the rest of a backoff wait (the browser came back online).
  retryNow() {
    if (this.retryTimer === null) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.open();
  }

  get connected() {
    return this.state === State.CONNECTED && this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  // signal sends {type, data} to one connection (to) or to all. It resolves
  // with the relay's result (code 200) and rejects with a SignalError. With
  // retry (the default) a signal made while reconnecting waits for the new
  // socket, and one whose result was lost with the socket is sent again with
  // the same id (the relay delivers it at most once). Without retry it fails
  // at once with code 500 unless the socket is open: for motion, which must
  // never run late.
  signal({ type = '', data = '', to = '', retry = true }) {
    if (this.state === State.IDLE || this.state === State.DISCONNECTED) {
      return Promise.reject(new SignalError(500, 'not connected'));
    }
    if (!retry && !this.connected) return Promise.reject(new SignalError(500, 'not connected'));
    if (this.pending.size >= MAX_PENDING) {
      return Promise.reject(new SignalError(500, `${MAX_PENDING} signals already await a result`));
    }
    const id = String(++this.nextId);
    const frame = { op: 'signal', id, type, data };
    if (to) frame.to = to;
    return this.submit(frame, retry);
  }

  forceDisconnect(connectionId) {
    if (!this.connected) return Promise.reject(new SignalError(500, 'not connected'));
    const id = String(++this.nextId);
    return this.submit({ op: 'forceDisconnect', id, connectionId }, false);
  }

  submit(frame, retry) {
    return new Promise((resolve, reject) => {
      const p = { frame, resolve, reject, retry, queuedAt: performance.now() };
      this.pending.set(frame.id, p);
      if (this.connected) this.transmit(p);
    });
  }

  transmit(p) {
    const queued = Math.round(performance.now() - p.queuedAt);
    const frame = queued > 0 && p.frame.op === 'signal' ? { ...p.frame, queuedMs: queued } : p.frame;
    this.ws.send(JSON.stringify(frame));
  }

  setState(state, detail, code = 0) {
    this.state = state;
    this.detail = detail;
    this.dispatchEvent(new CustomEvent('state', { detail: { state, detail, code } }));
  }

  log(level, text) {
    this.dispatchEvent(new CustomEvent('log', { detail: { level, text } }));
  }

  open() {
    const u = new URL(this.url);
    u.searchParams.set('token', this.token);
    if (this.resumeKey) {
      u.searchParams.set('resume', this.resumeKey);
      u.searchParams.set('last', String(this.lastSeq));
    }
    let ws;
    try {
      ws = new WebSocket(u);
    } catch (err) {
      this.finish(0, `cannot open ${this.url}: ${err.message}`);
      return;
    }
    this.ws = ws;
    const sock = { welcomed: false, error: null, reason: '' };
    ws.onmessage = (ev) => {
      if (ws !== this.ws) return;
      this.lastRx = performance.now();
      let f;
      try {
        f = JSON.parse(ev.data);
      } catch {
        this.log('warn', 'the relay sent a frame that is not JSON');
        return;
      }
      if (f.op === 'error') {
        sock.error = f;
        if (sock.welcomed) this.log('warn', `relay error ${f.code}: ${f.message}`);
        return;
      }
      if (f.op === 'disconnected') {
        sock.reason = f.reason || '';
        return;
      }
      if (!sock.welcomed) {
        if (f.op === 'welcome') {
          sock.welcomed = true;
          this.welcome(f);
        }
        return;
      }
      this.frame(f);
    };
    ws.onclose = (ev) => {
      if (ws !== this.ws) return;
      this.closed(ev.code, sock.error ? sock.error.message : ev.reason, sock);
    };
  }

  welcome(f) {
    const prev = this.me;
    const resumed = !!f.resumed && prev !== null && prev.connectionId === f.connection.connectionId;
    const fresh = prev !== null && !resumed;
    if (!resumed) this.lastSeq = f.seq || 0; // a resume keeps last: the replay follows
    this.me = f.connection;
    this.sessionId = f.sessionId || '';
    this.role = f.role || '';
    this.limits = f.limits || {};
    this.resumeKey = f.resumeKey || '';
    this.connections = new Map((f.connections || []).map((c) => [c.connectionId, c]));
    this.attempt = 0;
    this.lastRx = performance.now();
    this.startPings();
    if (fresh) this.log('warn', 'the old connection had expired; joined as a new connection (events of the gap are lost)');
    else if (resumed) this.log('info', `resumed the connection${f.missed ? `; ${f.missed} events were lost` : ''}`);
    this.setState(State.CONNECTED, '');
    this.dispatchEvent(new CustomEvent('welcome', { detail: { resumed, fresh, missed: f.missed || 0 } }));
    this.dispatchEvent(new CustomEvent('connections', { detail: { kind: 'welcome' } }));
    for (const p of this.pending.values()) this.transmit(p); // unanswered sends, same ids
  }

  frame(f) {
    switch (f.op) {
      case 'result': {
        const p = this.pending.get(f.id);
        if (!p) return;
        this.pending.delete(f.id);
        if (f.code === 200) p.resolve(f);
        else p.reject(new SignalError(f.code, f.message));
        return;
      }
      case 'pong': {
        const t = this.pings.get(f.id);
        this.pings.delete(f.id);
        if (t !== undefined) this.dispatchEvent(new CustomEvent('rtt', { detail: { ms: performance.now() - t } }));
        return;
      }
      case 'signal':
      case 'connectionCreated':
      case 'connectionDestroyed':
        break;
      default:
        return; // unknown ops are ignored, like unknown fields
    }
    const seq = f.seq || 0;
    if (seq) {
      if (seq <= this.lastSeq) return; // already processed (a replay after resume)
      if (seq > this.lastSeq + 1) this.log('warn', `events ${this.lastSeq + 1}–${seq - 1} were lost`);
      this.lastSeq = seq;
    }
    if (f.op === 'signal') {
      this.dispatchEvent(new CustomEvent('signal', {
        detail: { type: f.type || '', data: f.data || '', from: f.from || null, to: f.to || null, seq, ageMs: f.ageMs || 0 },
      }));
    } else if (f.op === 'connectionCreated') {
      this.connections.set(f.connection.connectionId, f.connection);
      this.dispatchEvent(new CustomEvent('connections', { detail: { kind: 'created', connection: f.connection } }));
    } else {
      this.connections.delete(f.connection.connectionId);
      this.dispatchEvent(new CustomEvent('connections', {
        detail: { kind: 'destroyed', connection: f.connection, reason: f.reason || '' },
      }));
    }
  }

  startPings() {
    this.stopPings();
    this.pingTimer = setInterval(() => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
      // A browser cannot see WebSocket pings, so the console pings the relay
      // itself and treats a socket silent for deadAfter as dead (§7).
      if (performance.now() - this.lastRx > this.deadAfter) {
        this.log('warn', `no word from the relay for ${Math.round(this.deadAfter / 1000)} s; reconnecting`);
        const ws = this.ws;
        this.ws = null; // its late events are ignored from here on
        ws.close(4000, 'dead');
        this.closed(1006, 'no answer from the relay', { welcomed: true, error: null, reason: '' });
        return;
      }
      const id = 'p' + (++this.nextId);
      this.pings.set(id, performance.now());
      if (this.pings.size > 16) this.pings.delete(this.pings.keys().next().value);
      this.ws.send(JSON.stringify({ op: 'ping', id }));
    }, this.pingEvery);
  }

  stopPings() {
    if (this.pingTimer !== null) clearInterval(this.pingTimer);
    this.pingTimer = null;
    this.pings.clear();
  }

  closed(code, message, sock) {
    this.stopPings();
    this.ws = null;
    if (this.leaving) {
      this.finish(1000, '');
      return;
    }
    if (permanent[code]) {
      this.finish(code, message);
      return;
    }
    // Everything else is worth another try: the connection outlives the
    // socket for the grace period. Motion sent without retry fails now.
    for (const [id, p] of this.pending) {
      if (!p.retry) {
        this.pending.delete(id);
        p.reject(new SignalError(500, 'not connected'));
      }
    }
    const delay = backoffDelay(this.attempt++, this.backoff);
    let why;
    if (code === 4429) why = `the session is full (${message})`;
    else if (code === 4008) why = 'the console fell behind the relay';
    else if (code === 1001 || code === 1012) why = 'the relay is restarting';
    else if (!sock.welcomed) why = "can't reach the relay";
    else why = 'the connection dropped';
    const state = this.me ? State.RECONNECTING : State.CONNECTING;
    this.setState(state, `${why}; retrying in ${(delay / 1000).toFixed(1)} s`, code);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.open();
    }, delay);
  }

  // finish ends the session client: no more reconnects.
  finish(code, message) {
    this.stopPings();
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    window.removeEventListener('online', this.onOnline);
    const ws = this.ws;
    this.ws = null;
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000);
    for (const p of this.pending.values()) p.reject(new SignalError(500, 'not connected'));
    this.pending.clear();
    this.resumeKey = '';
    const say = permanent[code];
    this.setState(State.DISCONNECTED, say ? say(message) : message || 'Disconnected.', code);
  }
}
