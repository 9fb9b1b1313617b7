// model.js — pure functions that read what the session carries: connection
// data, and the agent's ack, telemetry and status signals. No DOM here, so the
// browser tests can import and check them directly.

// parseConnectionData reads a token's connection data the way the agent does
// (docs/configuration.md, access): "role=robot,name=rover-1" (pairs separated
// by "," or "&") or a flat JSON object. Values are strings.
export function parseConnectionData(data) {
  const out = {};
  const s = (data || '').trim();
  if (s.startsWith('{')) {
    try {
      const obj = JSON.parse(s);
      if (obj && typeof obj === 'object' && !Array.isArray(obj)) {
        for (const [k, v] of Object.entries(obj)) {
          if (v === null || typeof v !== 'object') out[k] = String(v);
        }
        return out;
      }
    } catch { /* not JSON: read it as pairs */ }
  }
  for (const part of s.split(/[,&]/)) {
    const i = part.indexOf('=');
    const k = (i < 0 ? part : part.slice(0, i)).trim();
    if (k && !(k in out)) out[k] = i < 0 ? '' : part.slice(i + 1).trim();
  }
  return out;
}

const robotRoles = new Set(['robot', 'agent']);

// describe turns a connection into what the console shows: a name, a kind
// (robot or operator) and the parsed data. A connection that has sent the
// agent's telemetry or status is a robot whatever its data says.
export function describe(conn, { self = '', agents = new Set() } = {}) {
  const fields = parseConnectionData(conn.data);
  const role = (fields.role || '').toLowerCase();
  const robot = robotRoles.has(role) || agents.has(conn.connectionId);
  return {
    id: conn.connectionId,
    name: fields.name || fields.user || fields.username || shortID(conn.connectionId),
    role: role || (robot ? 'robot' : ''),
    robot,
    self: conn.connectionId === self,
    data: conn.data || '',
    fields,
    created: conn.creationTime || 0,
  };
}

export function shortID(id) {
  return id && id.length > 10 ? id.slice(0, 8) + '…' : id || '?';
}

// parseJSON returns the object in a signal's data, or null.
export function parseJSON(data) {
  if (!data) return null;
  try {
    const v = JSON.parse(data);
    return v && typeof v === 'object' && !Array.isArray(v) ? v : null;
  } catch {
    return null;
  }
}

function num(v) {
  if (v === null || v === undefined || v === '') return null;
  const n = typeof v === 'number' ? v : Number(v);
  return Number.isFinite(n) ? n : null;
}

// readAck reads the agent's ack: {"id":17,"type":"drive","status":"ok",
// "code":…,"reason":…,"device_ms":…}. The id is kept as JSON text ("17"),
// since the agent echoes numbers and strings alike.
export function readAck(data) {
  const o = parseJSON(data);
  if (!o || o.id === undefined || o.id === null) return null;
  return {
    id: String(o.id),
    type: typeof o.type === 'string' ? o.type : '',
    status: typeof o.status === 'string' ? o.status : 'ok',
    code: o.code === undefined || o.code === null ? '' : String(o.code),
    reason: typeof o.reason === 'string' ? o.reason : '',
    deviceMs: num(o.device_ms),
  };
}

// telemetryStates names the firmware's st values (firmware-protocol.md §5.2).
export const telemetryStates = { RDY: 'ready', FS: 'failsafe', ES: 'e-stop' };

// readTelemetry reads the TLM fields the agent forwards as JSON (st, vl, vr,
// lseq, bat, x, y, th, ovf), as numbers or numeric strings.
export function readTelemetry(data) {
  const o = parseJSON(data);
  if (!o) return null;
  const t = {
    st: typeof o.st === 'string' ? o.st : null,
    device: typeof o.device === 'string' ? o.device : null,
    vl: num(o.vl), vr: num(o.vr), lseq: num(o.lseq), bat: num(o.bat),
    x: num(o.x), y: num(o.y), th: num(o.th), ovf: num(o.ovf),
  };
  t.pose = t.x !== null && t.y !== null;
  return t;
}

function truthy(v) {
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return v !== 0;
  if (typeof v === 'string') return /^(true|latched|on|yes|1|active|engaged)$/i.test(v);
  return false;
}

function str(v) {
  return v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
}

// readStatus reads the agent's status signal. It accepts the shape
// docs/console.md documents and a few spellings around it, so that a status
// with more or fewer fields still renders:
//
//	{"estop":{"latched":true,"by":"<connectionId>"},
//	 "lease":{"mode":"exclusive","holder":"<connectionId>"},
//	 "devices":{"base":{"state":"ready","firmware":"teleop-fw 1.2.0"}},
//	 "watchdog":"ok"}
//
// estop may be a bare boolean; lease a bare holder id; devices a list of
// objects with a name; a device's firmware may be "version" or "fw".
export function readStatus(data) {
  const o = parseJSON(data);
  if (!o) return null;
  const s = { estop: null, estopBy: '', lease: null, devices: [], watchdog: '', firmware: '' };

  const e = o.estop ?? o.e_stop ?? o.eStop;
  if (e !== undefined && e !== null) {
    if (typeof e === 'object') {
      s.estop = truthy(e.latched ?? e.active ?? e.state);
      s.estopBy = str(e.by ?? e.from ?? e.source);
    } else {
      s.estop = truthy(e);
    }
  }
  if (!s.estopBy) s.estopBy = str(o.estop_by ?? '');

  const l = o.lease;
  if (l !== undefined) {
    if (l && typeof l === 'object') {
      s.lease = { mode: str(l.mode), holder: str(l.holder ?? l.connectionId ?? l.connection ?? ''), name: str(l.name ?? '') };
    } else {
      s.lease = { mode: '', holder: str(l ?? ''), name: '' };
    }
  } else if ('lease_holder' in o || 'holder' in o) {
    s.lease = { mode: '', holder: str(o.lease_holder ?? o.holder ?? ''), name: '' };
  }

  const d = o.devices;
  const device = (name, v) => {
    if (v && typeof v === 'object') {
      return {
        name: str(v.name ?? name),
        state: str(v.state ?? v.status ?? ''),
        firmware: str(v.firmware ?? v.version ?? v.fw ?? ''),
        error: str(v.error ?? v.last_error ?? ''),
      };
    }
    return { name, state: str(v), firmware: '', error: '' };
  };
  if (Array.isArray(d)) {
    d.forEach((v, i) => s.devices.push(device(String(i), v)));
  } else if (d && typeof d === 'object') {
    for (const [name, v] of Object.entries(d)) s.devices.push(device(name, v));
  }
  s.firmware = str(o.firmware ?? o.firmware_version ?? o.fw ?? '');
  if (s.firmware && s.devices.length === 1 && !s.devices[0].firmware) s.devices[0].firmware = s.firmware;
  s.watchdog = str(o.watchdog ?? '');
  return s;
}

// round3 rounds to millimetres (m/s, rad/s) and turns -0 into 0.
export function round3(v) {
  const r = Math.round(v * 1000) / 1000;
  return r === 0 ? 0 : r;
}
