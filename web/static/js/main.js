// main.js — the operator console: joins the session named by the token in
// the page's address (#token=…, or ?token=… which it moves into the
// fragment), drives the robot through the deadman, and renders what the
// agent sends back. See docs/console.md.

import { Session, State, connectURL } from './session.js';
import { Deadman, Keyboard, Joystick, Gamepads } from './drive.js';
import { LatencyChart, PoseTrail } from './charts.js';
import { describe, readAck, readTelemetry, readStatus, telemetryStates, round3, shortID } from './model.js';

const $ = (id) => document.getElementById(id);
const el = {
  conn: $('conn'), connState: $('conn-state'), connDetail: $('conn-detail'), rtt: $('rtt'), whoami: $('whoami'),
  leave: $('leave'), join: $('join'), joinToken: $('join-token'), console: $('console'),
  bannerError: $('banner-error'), bannerRobot: $('banner-robot'), bannerEstop: $('banner-estop'),
  estop: $('estop'), stop: $('stop'), clear: $('clear'), acquire: $('acquire'), release: $('release'),
  leaseHolder: $('lease-holder'), target: $('target'), stick: $('stick'), driveState: $('drive-state'),
  speedLimits: $('speed-limits'), gamepad: $('gamepad'), maxLinear: $('max-linear'), maxAngular: $('max-angular'),
  latency: $('latency'), ackLast: $('ack-last'), ackDevice: $('ack-device'), ackCounts: $('ack-counts'),
  rejected: $('rejected'), tlmAge: $('tlm-age'), tlmBat: $('tlm-bat'), tlmWheels: $('tlm-wheels'),
  tlmPose: $('tlm-pose'), tlmSt: $('tlm-st'), statusFrom: $('status-from'), stEstop: $('st-estop'),
  stLease: $('st-lease'), stWatchdog: $('st-watchdog'), devices: $('devices'), people: $('people'),
  peopleCount: $('people-count'), log: $('log'),
};

const SPEED_STEPS = [0.25, 0.5, 0.75, 1];
const HZ = 20;

let session = null;
let token = '';
const agents = new Set(); // connections that sent telemetry or status: robots, whatever their data says
let chosen = ''; // the robot the operator picked when there are several
let appID = 0; // the id in drive/stop/estop/clear/control data; increasing
const sent = new Map(); // app id → {t, type, to}: for ack latency
let holdTo = ''; // the robot this hold's drives went to
let holdSent = 0; // drives sent in this hold
let sentTotal = 0;
let inhibit = false; // after Space or e-stop: ignore input until every input is let go
let speedStep = 1;
let localEstop = false; // this console sent an e-stop; cleared by Clear or by the robot reporting it cleared
let statusEstop = null; // the agent's last word on the e-stop
let estopBy = '';
let lease = null;
let acks = { ok: 0, bad: 0 };
let lastTelemetry = 0;
let lastReject = { why: '', at: 0 };

const chart = new LatencyChart($('latency-chart'));
const trail = new PoseTrail($('trail'));

// ---- token and joining ----

// param reads name from a query string or fragment without URLSearchParams,
// which would turn a T1 token's '+' into a space.
function param(s, name) {
  for (const part of s.replace(/^[?#]/, '').split('&')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i) === name) {
      try {
        return decodeURIComponent(part.slice(i + 1));
      } catch {
        return part.slice(i + 1);
      }
    }
  }
  return '';
}

function tokenFromAddress() {
  let t = param(location.hash, 'token');
  const q = param(location.search, 'token');
  if (!t && q) {
    t = q;
    // Keep it out of the address bar, history and any later request.
    const rest = location.search.replace(/^\?/, '').split('&').filter((p) => p && !p.startsWith('token='));
    history.replaceState(null, '', location.pathname + (rest.length ? '?' + rest.join('&') : '') + '#token=' + encodeURIComponent(t));
  }
  return t;
}

function join(t) {
  if (session) {
    const old = session;
    session = null;
    old.leave();
  }
  token = t;
  resetViews();
  el.join.hidden = true;
  el.bannerError.hidden = true;
  session = new Session({ url: connectURL(), token: t });
  const s = session;
  const on = (name, fn) => s.addEventListener(name, (e) => {
    if (s === session) fn(e.detail);
  });
  on('state', onState);
  on('welcome', onWelcome);
  on('connections', onConnections);
  on('signal', onSignal);
  on('rtt', ({ ms }) => (el.rtt.textContent = `relay ${Math.round(ms)} ms`));
  on('log', ({ level, text }) => log(text, level));
  s.connect();
}

function resetViews() {
  agents.clear();
  chosen = '';
  sent.clear();
  localEstop = false;
  statusEstop = null;
  estopBy = '';
  lease = null;
  acks = { ok: 0, bad: 0 };
  lastTelemetry = 0;
  lastReject = { why: '', at: 0 };
  trail.clear();
  el.latency.textContent = '—';
  el.ackLast.textContent = '—';
  el.ackDevice.textContent = '—';
  el.ackCounts.textContent = '0 / 0';
  el.rejected.hidden = true;
  for (const k of ['tlmBat', 'tlmWheels', 'tlmPose', 'tlmSt', 'stEstop', 'stLease', 'stWatchdog']) el[k].textContent = '—';
  el.devices.replaceChildren();
  el.statusFrom.textContent = '';
  el.rtt.textContent = '';
}

el.join.addEventListener('submit', (e) => {
  e.preventDefault();
  const t = el.joinToken.value.trim();
  if (!t) return;
  history.replaceState(null, '', location.pathname + location.search.replace(/(^|&|\?)token=[^&]*/, '') + '#token=' + encodeURIComponent(t));
  join(t);
});

el.leave.addEventListener('click', () => session && session.leave());

window.addEventListener('hashchange', () => {
  const t = param(location.hash, 'token');
  if (t && t !== token) join(t);
});

// ---- connection state ----

const stateText = {
  [State.IDLE]: 'not connected',
  [State.CONNECTING]: 'connecting',
  [State.CONNECTED]: 'connected',
  [State.RECONNECTING]: 'reconnecting',
  [State.DISCONNECTED]: 'disconnected',
};

function onState({ state, detail, code }) {
  el.conn.dataset.state = state;
  el.connState.textContent = stateText[state];
  el.connDetail.textContent = state === State.DISCONNECTED ? '' : detail;
  document.body.dataset.state = state;
  document.body.dataset.joined = session && session.me ? 'true' : 'false';
  el.leave.hidden = state === State.DISCONNECTED || state === State.IDLE;
  if (state === State.DISCONNECTED) {
    el.bannerError.textContent = detail;
    el.bannerError.hidden = false;
    el.bannerError.classList.toggle('calm', code === 1000);
    el.join.hidden = false;
    el.joinToken.value = code === 1000 ? token : '';
    log(detail, code === 1000 ? 'info' : 'bad');
  } else if (state === State.RECONNECTING) {
    log(`reconnecting: ${detail}`, 'warn');
  }
  release(); // no motion across a state change; input must be pressed again
  render();
}

function onWelcome({ resumed, fresh }) {
  const me = describe(session.me);
  el.whoami.textContent = `you: ${me.name}${session.role === 'moderator' ? ' (moderator)' : ''}`;
  if (!resumed) log(`joined session ${shortID(session.sessionId)} as ${me.name}`);
  if (fresh) {
    lease = null;
    log('a new connection holds no lease: take control again if you need it', 'warn');
  }
  el.rtt.textContent = '';
}

function onConnections({ kind, connection, reason }) {
  if (kind === 'created') log(`${describe(connection, { agents }).name} joined`);
  if (kind === 'destroyed') {
    agents.delete(connection.connectionId);
    if (chosen === connection.connectionId) chosen = '';
    log(`${describe(connection, { agents }).name} left (${reason || 'gone'})`, 'warn');
  }
  render();
}

// ---- people and robots ----

function people() {
  if (!session || !session.me) return [];
  return [...session.connections.values()].map((c) => describe(c, { self: session.me.connectionId, agents }));
}

function robots() {
  return people().filter((p) => p.robot);
}

// target is the robot drive goes to: the only one, or the one picked.
function target() {
  const rs = robots();
  if (rs.length === 1) return rs[0].id;
  return rs.some((r) => r.id === chosen) ? chosen : '';
}

// named replaces the connection IDs an agent puts in its reasons ("lease
// held by 094b5af1-…") with the names people know them by.
function named(text) {
  if (!session) return text;
  let out = String(text);
  for (const id of session.connections.keys()) {
    if (id && out.includes(id)) out = out.split(id).join(nameOf(id));
  }
  return out;
}

function nameOf(id) {
  if (!id) return 'nobody';
  if (session && session.me && id === session.me.connectionId) return 'you';
  const c = session && session.connections.get(id);
  return c ? describe(c, { agents }).name : shortID(id);
}

el.target.addEventListener('change', () => {
  chosen = el.target.value;
  el.target.blur(); // the arrow keys drive again
  render();
});

function renderPeople() {
  const ps = people().sort((a, b) => (b.robot - a.robot) || (a.created - b.created));
  el.peopleCount.textContent = ps.length ? `(${ps.length})` : '';
  const moderator = session && session.role === 'moderator' && session.connected;
  el.people.replaceChildren(...ps.map((p) => {
    const li = document.createElement('li');
    li.dataset.kind = p.robot ? 'robot' : 'operator';
    li.dataset.id = p.id;
    const head = document.createElement('div');
    head.className = 'who';
    const name = document.createElement('strong');
    name.textContent = p.name;
    head.append(name, badge(p.robot ? 'robot' : p.role || 'operator', p.robot ? 'robot' : 'operator'));
    if (p.self) head.append(badge('you', 'you'));
    if (lease && lease.holder === p.id) head.append(badge('in control', 'lease'));
    if (moderator && !p.self) {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'quiet small';
      b.textContent = 'Remove';
      b.title = 'Force-disconnect this connection';
      b.addEventListener('click', () => session.forceDisconnect(p.id)
        .then(() => log(`removed ${p.name}`), (err) => log(`could not remove ${p.name}: ${err.message}`, 'bad')));
      head.append(b);
    }
    const data = document.createElement('code');
    data.className = 'data';
    data.textContent = p.data || '(no connection data)';
    const when = document.createElement('span');
    when.className = 'muted small';
    when.textContent = p.created ? `since ${new Date(p.created).toLocaleTimeString()}` : '';
    li.append(head, data, when);
    return li;
  }));
}

function badge(text, kind) {
  const b = document.createElement('span');
  b.className = `badge ${kind}`;
  b.textContent = text;
  return b;
}

function renderTarget() {
  const rs = robots();
  const opts = [];
  if (rs.length !== 1) {
    const o = new Option(rs.length ? '— pick a robot —' : 'no robot', '');
    opts.push(o);
  }
  for (const r of rs) opts.push(new Option(r.name, r.id));
  el.target.replaceChildren(...opts);
  el.target.value = target();
  el.target.disabled = rs.length < 2;
}

// ---- safety: e-stop, stop, clear, lease ----

function nextID() {
  return ++appID;
}

function remember(id, type, to) {
  sent.set(String(id), { t: performance.now(), type, to });
  if (sent.size > 512) sent.delete(sent.keys().next().value);
}

function estop() {
  holdInhibit();
  holdSent = 0; // the e-stop replaces the release's stop
  deadman.set(null);
  localEstop = true;
  el.estop.classList.remove('fired');
  void el.estop.offsetWidth; // restart the flash
  el.estop.classList.add('fired');
  if (!session || session.state === State.DISCONNECTED) {
    log('E-STOP NOT SENT: not connected to the relay. Use the robot\'s own stop.', 'bad');
    render();
    return;
  }
  const id = nextID();
  remember(id, 'estop', '');
  // To every connection: every agent in the session must hear it. Kept for
  // resend across a reconnect: a late e-stop is still safe.
  session.signal({ type: 'estop', data: JSON.stringify({ id }) })
    .then(() => log('e-stop sent to every robot in the session', 'bad'),
      (err) => log(`E-STOP NOT SENT: ${err.message}`, 'bad'));
  render();
}

function sendStop(to) {
  if (!session || !to || !session.connections.has(to)) return;
  const id = nextID();
  remember(id, 'stop', to);
  session.signal({ type: 'stop', data: JSON.stringify({ id }), to })
    .catch((err) => log(`stop not sent: ${err.message}`, 'bad'));
}

// stopNow is Space and the Stop button: one stop now, and no motion until
// every input has been let go.
function stopNow() {
  holdInhibit();
  const stopped = holdSent > 0;
  deadman.set(null);
  if (!stopped) sendStop(target());
  render();
}

function clearEstop() {
  const to = target();
  if (!session || !session.connected || !to) return;
  const id = nextID();
  remember(id, 'clear', to);
  localEstop = false;
  // Not retried: releasing an e-stop must not happen later than asked.
  session.signal({ type: 'clear', data: JSON.stringify({ id }), to, retry: false })
    .then(() => log(`clear sent to ${nameOf(to)}`), (err) => log(`clear not sent: ${err.message}`, 'bad'));
  render();
}

function control(action) {
  const to = target();
  if (!session || !session.connected || !to) return;
  const id = nextID();
  remember(id, 'control', to);
  session.signal({ type: 'control', data: JSON.stringify({ id, action }), to, retry: false })
    .catch((err) => log(`${action} not sent: ${err.message}`, 'bad'));
}

function button(b, fn) {
  b.addEventListener('click', () => {
    b.blur(); // Space must not click it again
    fn();
  });
}
button(el.estop, estop);
button(el.stop, stopNow);
button(el.clear, clearEstop);
button(el.acquire, () => control('acquire'));
button(el.release, () => control('release'));

function latched() {
  return localEstop || statusEstop === true;
}

// ---- driving ----

// limits are the speeds at step 4, within the inputs' own bounds.
function limits() {
  const read = (input, fallback) => {
    const v = Number(input.value) || fallback;
    return Math.min(Number(input.max), Math.max(Number(input.min), v));
  };
  return { lin: read(el.maxLinear, 0.5), ang: read(el.maxAngular, 1.5) };
}

for (const [key, input] of [['teleop.maxLinear', el.maxLinear], ['teleop.maxAngular', el.maxAngular]]) {
  try {
    const v = localStorage.getItem(key);
    if (v) input.value = v;
  } catch { /* storage off: defaults */ }
  input.addEventListener('change', () => {
    try {
      localStorage.setItem(key, input.value);
    } catch { /* storage off */ }
    renderSpeed();
  });
}

function speed() {
  const boost = keyboard.shift || gamepads.boost;
  return SPEED_STEPS[Math.min(SPEED_STEPS.length - 1, speedStep + (boost ? 1 : 0))];
}

// mix picks the input that drives: joystick, else gamepad, else keyboard.
function mix() {
  const v = joystick.value || gamepads.value || keyboard.value;
  if (!v) {
    inhibit = false;
    return null;
  }
  if (inhibit) return null;
  const { lin, ang } = limits();
  const k = speed();
  return { linear: v.linear * lin * k, angular: v.angular * ang * k };
}

function inputChanged() {
  deadman.set(mix());
  renderSpeed();
  renderDrive();
}

// release ends the hold without sending anything new but its stop; input
// still held must be let go and pressed again.
function release() {
  holdInhibit();
  deadman.set(null);
}

function holdInhibit() {
  inhibit = !!(joystick.value || gamepads.value || keyboard.value);
}

let suppressed = '';

function driveTick(cmd) {
  const to = target();
  suppressed = '';
  if (!session || !session.connected) suppressed = 'not connected';
  else if (!to) suppressed = robots().length ? 'pick a robot' : 'no robot in the session';
  else if (latched()) suppressed = 'e-stop latched — clear it first';
  if (suppressed) {
    renderDrive(cmd);
    return;
  }
  if (holdTo && holdTo !== to) sendStop(holdTo); // the operator switched robots mid-hold
  holdTo = to;
  const id = nextID();
  remember(id, 'drive', to);
  holdSent++;
  sentTotal++;
  const data = JSON.stringify({ id, linear: round3(cmd.linear), angular: round3(cmd.angular) });
  // Never retried: a drive that could not go now must not run later.
  session.signal({ type: 'drive', data, to, retry: false }).catch((err) => {
    if (err.code !== 500) log(`drive #${id} refused by the relay: ${err.message}`, 'warn');
  });
  renderDrive(cmd);
}

function driveReleased() {
  if (holdSent > 0) sendStop(holdTo); // one stop on release, then silence
  holdSent = 0;
  holdTo = '';
  suppressed = '';
  renderDrive();
}

const deadman = new Deadman({ hz: HZ, drive: driveTick, release: driveReleased });
const keyboard = new Keyboard({
  onChange: inputChanged,
  onKey: (code) => {
    if (code === 'Escape') estop();
    else if (code === 'Space') stopNow();
    else if (/^Digit[1-4]$/.test(code)) setSpeed(Number(code.slice(5)) - 1);
    else return false;
    return true;
  },
});
const joystick = new Joystick(el.stick, { onChange: inputChanged });
const gamepads = new Gamepads({ onChange: inputChanged, onEstop: estop });
// A hidden page gets no key-ups and stale gamepad readings, and its timers
// are throttled: stop, and wait for the input to be let go.
document.addEventListener('visibilitychange', () => {
  if (document.hidden) release();
});

function setSpeed(i) {
  speedStep = i;
  renderSpeed();
  inputChanged();
}
for (const b of document.querySelectorAll('.speed button')) button(b, () => setSpeed(Number(b.dataset.step)));

function renderSpeed() {
  const { lin, ang } = limits();
  const k = speed();
  for (const b of document.querySelectorAll('.speed button')) {
    b.classList.toggle('on', Number(b.dataset.step) === speedStep);
  }
  el.speedLimits.textContent = `${(lin * k).toFixed(2)} m/s · ${(ang * k).toFixed(2)} rad/s`;
  el.gamepad.textContent = gamepads.name ? `· gamepad: ${gamepads.name.slice(0, 32)}` : '';
}

function renderDrive(cmd = deadman.cmd) {
  const held = deadman.held;
  el.driveState.dataset.held = String(held);
  el.driveState.dataset.periodMs = String(deadman.period);
  el.driveState.dataset.sent = String(sentTotal);
  el.driveState.dataset.suppressed = suppressed ? 'true' : 'false';
  if (!held) {
    el.driveState.textContent = inhibit && (joystick.value || gamepads.value || keyboard.value) ? 'stopped — let go to drive again' : 'idle';
    el.driveState.className = 'drive-state';
    return;
  }
  if (suppressed) {
    el.driveState.textContent = `held — not sending: ${suppressed}`;
    el.driveState.className = 'drive-state warn';
    return;
  }
  el.driveState.textContent = `driving ${nameOf(target())} · ${cmd.linear.toFixed(2)} m/s · ${cmd.angular.toFixed(2)} rad/s`;
  el.driveState.className = 'drive-state live';
}

// ---- what the agent sends ----

function onSignal(sig) {
  switch (sig.type) {
    case 'ack':
      return onAck(sig);
    case 'telemetry':
      if (sig.from) agents.add(sig.from);
      return onTelemetry(sig);
    case 'status':
      if (sig.from) agents.add(sig.from);
      return onStatus(sig);
  }
}

const fine = new Set(['ok', 'sent', 'superseded']);

function onAck(sig) {
  const a = readAck(sig.data);
  if (!a) return;
  const rec = sent.get(a.id);
  const latency = rec ? performance.now() - rec.t : null;
  if (rec && rec.type !== 'estop') sent.delete(a.id); // every robot acks an e-stop
  const type = a.type || (rec && rec.type) || 'signal';
  const good = fine.has(a.status);
  if (good) acks.ok++;
  else acks.bad++;
  el.ackCounts.textContent = `${acks.ok} / ${acks.bad}`;
  el.ackLast.textContent = `${type} #${a.id} ${a.status}`;
  el.ackLast.className = good ? 'ok' : 'bad';
  if (a.deviceMs !== null) el.ackDevice.textContent = `${a.deviceMs} ms`;
  if (latency !== null && type === 'drive') {
    el.latency.textContent = String(Math.round(latency));
    chart.push(latency, !good);
  }
  if (!good) {
    const why = `${a.status} by ${nameOf(sig.from)}: ${named(a.reason || a.code || a.status)}${a.code && a.reason ? ` (${a.code})` : ''}`;
    el.rejected.hidden = false;
    el.rejected.textContent = `${type} #${a.id} ${why}`;
    // A held drive is rejected 20 times a second; the log says it once.
    const now = performance.now();
    if (why !== lastReject.why || now - lastReject.at > 5000) log(el.rejected.textContent, 'bad');
    lastReject = { why, at: now };
  } else if (type !== 'drive' && type !== 'stop') {
    log(`${type} #${a.id} ${a.status} from ${nameOf(sig.from)}${latency !== null ? ` in ${Math.round(latency)} ms` : ''}`);
  }
}

function fmt(v, digits, unit = '') {
  return v === null ? '—' : `${v.toFixed(digits)}${unit}`;
}

function onTelemetry(sig) {
  const to = target();
  if (to && sig.from && sig.from !== to) return; // another robot's
  const t = readTelemetry(sig.data);
  if (!t) return;
  lastTelemetry = performance.now();
  if (t.bat !== null) el.tlmBat.textContent = fmt(t.bat, 2, ' V');
  if (t.vl !== null || t.vr !== null) el.tlmWheels.textContent = `${fmt(t.vl, 2)} / ${fmt(t.vr, 2)} m/s`;
  if (t.pose) {
    el.tlmPose.textContent = `${fmt(t.x, 2)}, ${fmt(t.y, 2)} m, ${fmt(t.th === null ? null : (t.th * 180) / Math.PI, 0, '°')}`;
    trail.push(t.x, t.y, t.th);
  }
  if (t.st) {
    el.tlmSt.textContent = telemetryStates[t.st] || t.st;
    el.tlmSt.className = t.st === 'RDY' ? 'ok' : 'bad';
  }
  el.tlmAge.textContent = `from ${nameOf(sig.from)}`;
}

function onStatus(sig) {
  const to = target();
  if (to && sig.from && sig.from !== to) return;
  const s = readStatus(sig.data);
  if (!s) return;
  el.statusFrom.textContent = `from ${nameOf(sig.from)}`;
  if (s.estop !== null) {
    if (s.estop === false && statusEstop === true) localEstop = false; // someone cleared it
    statusEstop = s.estop;
    estopBy = s.estopBy;
  }
  if (s.lease) lease = s.lease;
  el.stEstop.textContent = s.estop === null ? '—' : s.estop ? `LATCHED${s.estopBy ? ` by ${nameOf(s.estopBy)}` : ''}` : 'released';
  el.stEstop.className = s.estop ? 'bad' : s.estop === false ? 'ok' : '';
  el.stLease.textContent = s.lease ? `${nameOf(s.lease.holder)}${s.lease.mode ? ` (${s.lease.mode})` : ''}` : 'not in use';
  el.stWatchdog.textContent = s.watchdog || '—';
  el.devices.replaceChildren(...s.devices.map((d) => {
    const li = document.createElement('li');
    const n = document.createElement('strong');
    n.textContent = d.name;
    const st = document.createElement('span');
    st.className = `state ${/^(ready|ok|connected)$/i.test(d.state) ? 'ok' : d.state ? 'bad' : ''}`;
    st.textContent = d.state || '?';
    const fw = document.createElement('span');
    fw.className = 'muted';
    fw.textContent = d.firmware ? `firmware ${d.firmware}` : '';
    li.append(n, st, fw);
    if (d.error) {
      const e = document.createElement('div');
      e.className = 'bad small';
      e.textContent = d.error;
      li.append(e);
    }
    return li;
  }));
  render();
}

setInterval(() => {
  if (!lastTelemetry) return;
  const age = (performance.now() - lastTelemetry) / 1000;
  el.tlmAge.classList.toggle('stale', age > 2);
  if (age > 2) el.tlmAge.textContent = `no telemetry for ${Math.round(age)} s`;
}, 1000);

// ---- the rest of the page ----

function render() {
  const connected = !!session && session.connected;
  const rs = robots();
  el.bannerRobot.hidden = !connected || rs.length > 0;
  const isLatched = latched();
  el.bannerEstop.hidden = !isLatched;
  if (isLatched) {
    el.bannerEstop.textContent = statusEstop === true
      ? `E-STOP LATCHED${estopBy ? ` by ${nameOf(estopBy)}` : ''} — the robot will not move until the e-stop is cleared.`
      : 'E-STOP SENT — the robot will not move until the e-stop is cleared.';
  }
  document.body.dataset.estop = isLatched ? 'latched' : 'released';
  const to = target();
  el.clear.disabled = !connected || !to;
  el.acquire.disabled = !connected || !to;
  el.release.disabled = !connected || !to;
  el.stop.disabled = !session || session.state === State.DISCONNECTED;
  el.leaseHolder.textContent = lease ? nameOf(lease.holder) : '—';
  el.leaseHolder.dataset.holder = lease ? lease.holder : '';
  renderTarget();
  renderPeople();
  renderDrive();
}

function log(text, level = 'info') {
  const li = document.createElement('li');
  li.className = level;
  const t = document.createElement('time');
  t.textContent = new Date().toLocaleTimeString();
  li.append(t, document.createTextNode(' ' + text));
  el.log.prepend(li);
  while (el.log.children.length > 80) el.log.lastChild.remove();
}

renderSpeed();
render();
const first = tokenFromAddress();
if (first) join(first);
else {
  el.join.hidden = false;
  el.joinToken.focus();
}
