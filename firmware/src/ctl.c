/*
 * ctl.c: the robot's state (RDY / FS / ES), its setpoint, and the device
 * watchdog; turns VEL into wheel speeds and PWM; emits EVT and TLM lines.
 *
 * E-stop has two halves. The output latch (estop_latch) is set by the RX
 * interrupt the moment '!' arrives and keeps the motors off; it is released
 * only by CLEAR, and only when no '!' is still waiting in the RX ring behind
 * that CLEAR. The protocol state ES (es) follows the byte stream: it is
 * entered when the main loop reaches the '!' marker, which is where EVT ESTOP
 * is emitted. Motion commands are refused as soon as either is set.
 * estop_latch and estop_unseen are shared with the ISR; all else is owned by
 * the main loop.
 */
#include <util/atomic.h>

#include "board.h"
#include "fw.h"

struct settings cfg;

volatile uint8_t estop_unseen;
static volatile uint8_t estop_latch;   /* outputs must stay off */
static uint8_t es;                     /* protocol state ES, in stream order */
static enum state st;                  /* RDY or FS, under ES */
static int32_t wheel_l, wheel_r;       /* wheel setpoints, 1e-4 m/s */
static uint16_t lseq;                  /* newest applied setpoint; 0 = none */
static uint32_t wdog_last;             /* millis of the newest VEL/HB */
static uint8_t lights;
static uint16_t overflows;

/* Pending lines, sent as soon as the TX ring has room, in this order. */
static uint8_t pend_estop_evt; /* src=byte */
static uint8_t pend_wdog_evt;
static uint8_t pend_ovf_evt;
static uint8_t pend_tlm;
static uint32_t next_tlm;

void ctl_init(void)
{
	cfg.wdog_ms = 500;
	cfg.tlm_hz = 10;
	cfg.strict = 0;
	cfg.max_lin = MAX_LIN_DEFAULT;
	cfg.max_ang = MAX_ANG_DEFAULT;
	st = ST_RDY;
	next_tlm = 0;
}

void ctl_estop_isr(void)
{
	hw_kill();
	LED_PORT |= _BV(LED_BIT);
	estop_latch = 1;
}

uint8_t ctl_estop_latched(void)
{
	return estop_latch;
}

enum state ctl_state(void)
{
	return (es || estop_latch) ? ST_ES : st;
}

static void apply(int32_t l, int32_t r)
{
	wheel_l = l;
	wheel_r = r;
	/* round to the nearest duty step */
	int32_t pl = (l * PWM_MAX + (l < 0 ? -WHEEL_MAX / 2 : WHEEL_MAX / 2)) / WHEEL_MAX;
	int32_t pr = (r * PWM_MAX + (r < 0 ? -WHEEL_MAX / 2 : WHEEL_MAX / 2)) / WHEEL_MAX;
	hw_motors((int16_t)pl, (int16_t)pr);
}

static void safe(void)
{
	wheel_l = wheel_r = 0;
	ATOMIC_BLOCK(ATOMIC_FORCEON) {
		hw_kill();
	}
}

static uint8_t enter_es(void)
{
	ATOMIC_BLOCK(ATOMIC_FORCEON) {
		ctl_estop_isr();
	}
	wheel_l = wheel_r = 0;
	if (es)
		return 0;
	es = 1;
	return 1;
}

void ctl_estop_byte(void)
{
	if (enter_es())
		pend_estop_evt = 1;
}

uint8_t ctl_estop(void)
{
	return enter_es();
}

uint8_t ctl_clear(void)
{
	uint8_t changed = es || st == ST_FS;
	es = 0;
	pend_estop_evt = 0;
	ATOMIC_BLOCK(ATOMIC_FORCEON) {
		if (estop_unseen == 0)
			estop_latch = 0; /* else a later '!' is still in the ring */
	}
	if (changed) {
		safe(); /* RDY with a zero setpoint: the watchdog waits for motion */
		st = ST_RDY;
	}
	if (!estop_latch)
		hw_led(0);
	return changed;
}

void ctl_stop(void)
{
	safe();
}

uint8_t ctl_seq_is_stale(uint16_t seq)
{
	if (lseq == 0)
		return 0;
	/* RFC 1982 over 1..65535: newer when (seq - lseq) mod 65535 is 1..32767 */
	int32_t d = ((int32_t)seq - (int32_t)lseq) % 65535L;
	if (d < 0)
		d += 65535L;
	return !(d >= 1 && d <= 32767);
}

static void refresh(uint16_t seq)
{
	lseq = seq;
	wdog_last = hw_millis();
	if (st == ST_FS) {
		st = ST_RDY;
		hw_led(0);
	}
}

static int32_t clamp(int32_t v, int32_t lim)
{
	return v > lim ? lim : (v < -lim ? -lim : v);
}

void ctl_vel(int32_t lin, int32_t ang, uint16_t seq)
{
	lin = clamp(lin, cfg.max_lin);
	ang = clamp(ang, cfg.max_ang);
	int32_t d = ang * (TRACK_MM / 2) / 1000L;
	int32_t l = lin - d, r = lin + d;
	/* keep the curvature: scale both wheels when one exceeds its maximum */
	int32_t m = l < 0 ? -l : l, mr = r < 0 ? -r : r;
	if (mr > m)
		m = mr;
	if (m > WHEEL_MAX) {
		l = l * WHEEL_MAX / m;
		r = r * WHEEL_MAX / m;
	}
	refresh(seq);
	apply(l, r);
}

void ctl_hb(uint16_t seq)
{
	uint8_t was_fs = st == ST_FS;
	refresh(seq);
	if (was_fs)
		safe(); /* FS -> RDY with a zero setpoint */
}

uint16_t ctl_lseq(void)
{
	return lseq;
}

void ctl_forget_seq(void)
{
	lseq = 0;
}

void ctl_wheels(int32_t *vl, int32_t *vr)
{
	*vl = wheel_l;
	*vr = wheel_r;
}

uint8_t ctl_lights(void)
{
	return lights;
}

void ctl_set_lights(uint8_t on)
{
	lights = on;
	hw_lights(on);
}

void ctl_tlm_now(void)
{
	pend_tlm = 1;
}

void ctl_tlm_restart(void)
{
	next_tlm = hw_millis();
}

void ctl_note_overflow(void)
{
	overflows++;
	pend_ovf_evt = 1;
}

uint16_t ctl_overflows(void)
{
	return overflows;
}

static const char name_rdy[] PROGMEM = "RDY";
static const char name_fs[] PROGMEM = "FS";
static const char name_es[] PROGMEM = "ES";

const char *ctl_state_name(enum state s)
{
	return s == ST_ES ? name_es : (s == ST_FS ? name_fs : name_rdy);
}

void ctl_put_tlm(uint32_t now)
{
	out_begin();
	out_P("TLM ");
	out_u32(now);
	out_P(" st=");
	out_p(ctl_state_name(ctl_state()));
	out_P(" vl=");
	out_fix(wheel_l, 3);
	out_P(" vr=");
	out_fix(wheel_r, 3);
	out_P(" lseq=");
	out_u32(lseq);
	if (overflows) {
		out_P(" ovf=");
		out_u32(overflows);
	}
}

uint8_t ctl_poll(uint32_t now)
{
	uint8_t f;
	ATOMIC_BLOCK(ATOMIC_FORCEON) {
		f = rt_flags;
		rt_flags = 0;
	}
	if (f & RT_TLM)
		pend_tlm = 1;
	if (f & RT_OVERFLOW)
		ctl_note_overflow();

	/* Device watchdog (protocol section 8): only VEL and HB refresh it, and
	 * it trips only while motion is commanded. At a zero setpoint the robot
	 * is idle, not in failsafe: silence from the host is normal. */
	if (ctl_state() == ST_RDY && (wheel_l != 0 || wheel_r != 0) &&
	    (uint32_t)(now - wdog_last) >= cfg.wdog_ms) {
		safe();
		st = ST_FS;
		pend_wdog_evt = 1;
	}

	/* LED: on in ES, 2 Hz blink in FS, off in RDY. */
	if (ctl_state() != ST_ES)
		hw_led(st == ST_FS && (now & 0x100));

	/* Pending lines, oldest concern first; each waits for TX room. */
	if (pend_estop_evt) {
		out_begin();
		out_P("EVT ESTOP src=byte");
		if (!out_send())
			return 0;
		pend_estop_evt = 0;
	}
	if (pend_wdog_evt) {
		out_begin();
		out_P("EVT WDOG");
		if (!out_send())
			return 0;
		pend_wdog_evt = 0;
	}
	if (pend_ovf_evt) {
		out_begin();
		out_P("EVT OVERFLOW");
		if (!out_send())
			return 0;
		pend_ovf_evt = 0;
	}
	if (pend_tlm) {
		ctl_put_tlm(now);
		if (!out_send())
			return 0;
		pend_tlm = 0;
	}
	if (!cfg.tlm_hz)
		return 1;
	if ((int32_t)(now - next_tlm) >= 0) {
		ctl_put_tlm(now);
		if (out_send()) {
			uint16_t period = (uint16_t)(1000u / cfg.tlm_hz);
			next_tlm += period;
			if ((int32_t)(now - next_tlm) >= 0)
				next_tlm = now + period; /* fell behind: skip, don't burst */
		}
	}
	return 1;
}
