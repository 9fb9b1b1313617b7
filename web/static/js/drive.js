// drive.js — the operator's inputs and the deadman that turns them into
// drive signals: publish at a steady rate while input is held, one stop on
// release, then silence (research: teleop-anchors §4). Each input reports
// {linear, angular} in [-1, 1] (forward and counter-clockwise positive, as
// REP 103) or null when it is not held; the console scales them by speed.

// Deadman calls drive(cmd) at hz while a command is held (the first at
// once) and release() once when it is let go. Nothing runs while idle.
export class Deadman {
  constructor({ hz = 20, drive, release }) {
    this.period = 1000 / hz;
    this.drive = drive;
    this.release = release;
    this.cmd = null;
    this.timer = null;
  }

  get held() {
    return this.cmd !== null;
  }

  set(cmd) {
    const was = this.cmd;
    this.cmd = cmd;
    if (cmd && !was) {
      this.drive(cmd);
      this.timer = setInterval(() => this.drive(this.cmd), this.period);
    } else if (!cmd && was) {
      clearInterval(this.timer);
      this.timer = null;
      this.release();
    }
  }
}

const keyAxes = {
  KeyW: ['linear', 1], ArrowUp: ['linear', 1],
  KeyS: ['linear', -1], ArrowDown: ['linear', -1],
  KeyA: ['angular', 1], ArrowLeft: ['angular', 1],
  KeyD: ['angular', -1], ArrowRight: ['angular', -1],
};

function typing(el) {
  return el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
}

// Keyboard reads WASD and the arrow keys; Shift is a speed step up while
// held. Other keys (Space, Esc, digits) go to onKey. Losing focus releases
// every key: a keyup that happens in another window never arrives.
export class Keyboard {
  constructor({ onChange, onKey }) {
    this.down = new Set();
    this.shift = false;
    this.onChange = onChange;
    this.onKey = onKey;
    window.addEventListener('keydown', (e) => this.key(e, true));
    window.addEventListener('keyup', (e) => this.key(e, false));
    window.addEventListener('blur', () => this.releaseAll());
    document.addEventListener('visibilitychange', () => {
      if (document.hidden) this.releaseAll();
    });
  }

  key(e, down) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.code === 'ShiftLeft' || e.code === 'ShiftRight') {
      this.shift = down;
      this.onChange();
      return;
    }
    if (keyAxes[e.code]) {
      if (typing(e.target)) return;
      e.preventDefault();
      if (down) this.down.add(e.code);
      else this.down.delete(e.code);
      if (!e.repeat) this.onChange();
      return;
    }
    // Esc is the e-stop everywhere, even in a text field.
    if (e.code !== 'Escape' && typing(e.target)) return;
    if (!down) {
      if (e.code === 'Space') e.preventDefault(); // no click on a focused button
      return;
    }
    if (!e.repeat && this.onKey(e.code)) e.preventDefault();
    else if (e.code === 'Space') e.preventDefault();
  }

  releaseAll() {
    if (this.down.size === 0 && !this.shift) return;
    this.down.clear();
    this.shift = false;
    this.onChange();
  }

  get value() {
    if (this.down.size === 0) return null;
    const v = { linear: 0, angular: 0 };
    for (const code of this.down) {
      const [axis, sign] = keyAxes[code];
      v[axis] += sign;
    }
    v.linear = Math.max(-1, Math.min(1, v.linear));
    v.angular = Math.max(-1, Math.min(1, v.angular));
    return v;
  }
}

// Joystick is an on-screen stick for mouse, pen and touch (pointer events,
// captured, so a drag that leaves the stick still counts). Up is forward,
// left turns left. Letting go (or the browser cancelling the pointer)
// releases it.
export class Joystick {
  constructor(el, { onChange, deadzone = 0.06 }) {
    this.el = el;
    this.knob = el.querySelector('.knob');
    this.onChange = onChange;
    this.deadzone = deadzone;
    this.pointer = null;
    this.v = null;
    el.addEventListener('pointerdown', (e) => {
      if (this.pointer !== null || (e.pointerType === 'mouse' && e.button !== 0)) return;
      e.preventDefault();
      this.pointer = e.pointerId;
      el.setPointerCapture(e.pointerId);
      this.move(e);
    });
    el.addEventListener('pointermove', (e) => {
      if (e.pointerId === this.pointer) this.move(e);
    });
    const end = (e) => {
      if (e.pointerId === this.pointer) this.release();
    };
    el.addEventListener('pointerup', end);
    el.addEventListener('pointercancel', end);
    el.addEventListener('lostpointercapture', end);
    window.addEventListener('blur', () => this.release());
  }

  move(e) {
    const r = this.el.getBoundingClientRect();
    const radius = r.width / 2;
    let x = (e.clientX - (r.left + radius)) / radius;
    let y = (e.clientY - (r.top + r.height / 2)) / radius;
    const len = Math.hypot(x, y);
    if (len > 1) {
      x /= len;
      y /= len;
    }
    this.show(x, y);
    const dead = Math.hypot(x, y) < this.deadzone;
    this.v = { linear: dead ? 0 : -y, angular: dead ? 0 : -x };
    this.el.classList.add('active');
    this.onChange();
  }

  release() {
    if (this.pointer === null) return;
    this.pointer = null;
    this.v = null;
    this.show(0, 0);
    this.el.classList.remove('active');
    this.onChange();
  }

  show(x, y) {
    const travel = this.el.clientWidth / 2 - this.knob.clientWidth / 2;
    this.knob.style.transform = `translate(${x * travel}px, ${y * travel}px)`;
  }

  get value() {
    return this.v;
  }
}

// Gamepads polls the Gamepad API (standard mapping). The left stick drives
// (the right stick's x turns too), and nothing moves unless a shoulder
// button, LB or RB, is held: the deadman. RT is a speed step up; B is the
// e-stop.
export class Gamepads {
  constructor({ onChange, onEstop, hz = 50, deadzone = 0.12 }) {
    this.onChange = onChange;
    this.onEstop = onEstop;
    this.deadzone = deadzone;
    this.v = null;
    this.boost = false;
    this.name = '';
    this.estopDown = false;
    this.timer = null;
    this.period = 1000 / hz;
    if (!navigator.getGamepads) return;
    window.addEventListener('gamepadconnected', () => this.start());
    window.addEventListener('gamepaddisconnected', () => this.poll());
    setTimeout(() => {
      if (this.pads().length) this.start();
    });
  }

  pads() {
    return Array.from(navigator.getGamepads ? navigator.getGamepads() : []).filter((p) => p && p.connected !== false);
  }

  start() {
    if (this.timer === null) this.timer = setInterval(() => this.poll(), this.period);
    this.poll();
  }

  axis(v) {
    return Math.abs(v) < this.deadzone ? 0 : Math.max(-1, Math.min(1, v));
  }

  poll() {
    const pads = this.pads();
    let v = null;
    let boost = false;
    let estop = false;
    const name = pads.length ? pads[0].id : '';
    const renamed = name !== this.name;
    this.name = name;
    for (const p of pads) {
      const b = (i) => !!(p.buttons[i] && p.buttons[i].pressed);
      const a = (i) => this.axis(p.axes[i] || 0);
      if (b(1)) estop = true;
      if (v || !(b(4) || b(5))) continue;
      const turn = Math.abs(a(2)) > Math.abs(a(0)) ? a(2) : a(0);
      v = { linear: -a(1) || 0, angular: -turn || 0 };
      boost = b(7);
    }
    if (estop && !this.estopDown) this.onEstop();
    this.estopDown = estop;
    if (!pads.length && this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
    }
    const changed = renamed || (v === null) !== (this.v === null) || boost !== this.boost ||
      (v && (v.linear !== this.v.linear || v.angular !== this.v.angular));
    this.v = v;
    this.boost = boost;
    if (changed) this.onChange();
  }

  get value() {
    return this.v;
  }
}
