/*
 * proto.c: host lines in, exactly one OK/ERR out per command line
 * (firmware-protocol.md sections 2, 4, 7).
 *
 * proto_poll() moves bytes from the RX ring into the line buffer and runs at
 * most one complete line per call, and only while the TX ring has room for
 * the longest reply, so it never waits. Checks, in order: too long (7) or
 * forbidden byte (1), checksum (2, always with seq "-"), seq (1), strict (2),
 * verb (1), then the verb's own checks.
 *
 * One-shot verbs keep their reply in a one-entry cache; the same seq again is
 * answered from it without running the verb twice. VEL and HB are setpoints:
 * never cached, refused when not newer than the last applied one.
 */
#include <string.h>

#include <util/atomic.h>

#include "board.h"
#include "fw.h"

#define MAX_TOKENS  32 /* a 63-byte line with single spaces has at most 32 */
#define REPLY_ROOM  (OUT_MAX + 32) /* TX space needed before a line runs */
#define CACHE_MAX   48
#define ECHO_MAX    16             /* longest key echoed in an ERR */

/* line assembly */
#define L_BAD  0x01 /* forbidden byte seen: ERR - 1 parse */
#define L_LONG 0x02 /* over LINE_MAX: ERR - 7 toolong */
#define L_DROP 0x04 /* bytes lost: discard silently (EVT OVERFLOW says why) */
static char line[LINE_MAX];
static uint8_t llen, lflags;

/* reply cache for one-shot commands; seq 0 = empty */
static uint16_t cache_seq;
static uint8_t cache_hello; /* VER: the replay repeats the HELLO line */
static char cache[CACHE_MAX];
static uint8_t cache_len;

static uint8_t reset_requested;

static char *tok[MAX_TOKENS];
static uint8_t ntok;
static uint16_t seq;

enum { E_PARSE = 1, E_CHECKSUM, E_UNKNOWN, E_RANGE, E_ESTOP, E_BUSY, E_TOOLONG, E_STALE, E_INTERNAL };

static void line_reset(void)
{
	llen = 0;
	lflags = 0;
}

uint8_t proto_reset_requested(void)
{
	return reset_requested;
}

void proto_hello(void)
{
	out_begin();
	out_P("HELLO proto=1.0 fw=" FW_NAME "/" FW_VERSION " board=" BOARD_ID);
	out_P(" rx=");
	out_u32(LINE_MAX);
	out_P(" caps=vel,hb,out:lights,tlm,estop,strict");
}

/* ---- replies ---- */

static void begin_ok(void)
{
	out_begin();
	out_P("OK ");
	out_u32(seq);
}

/* ERR <seq|-> <code> <text>[ <echo>]; s = 0 prints "-". */
static void err(uint16_t s, uint8_t code, const char *text_P, const char *echo)
{
	out_begin();
	out_P("ERR ");
	if (s)
		out_u32(s);
	else
		out_c('-');
	out_c(' ');
	out_u32(code);
	if (text_P) {
		out_c(' ');
		out_p(text_P);
	}
	if (echo) {
		out_c(' ');
		for (uint8_t i = 0; i < ECHO_MAX && echo[i]; i++)
			out_c(echo[i]);
	}
}

static const char t_parse[] PROGMEM = "parse";
static const char t_checksum[] PROGMEM = "checksum";
static const char t_required[] PROGMEM = "checksum required";
static const char t_unknown[] PROGMEM = "unknown";
static const char t_range[] PROGMEM = "range";
static const char t_estop[] PROGMEM = "estop";
static const char t_toolong[] PROGMEM = "toolong";
static const char t_stale[] PROGMEM = "stale";

/* ---- numbers ---- */

static uint8_t is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Unsigned decimal integer, at most 5 digits, <= max. */
static uint8_t parse_uint(const char *s, uint32_t max, uint32_t *v)
{
	uint32_t x = 0;
	uint8_t n = 0;
	for (; *s; s++, n++) {
		if (!is_digit(*s) || n == 5)
			return 0;
		x = x * 10u + (uint32_t)(*s - '0');
	}
	if (n == 0 || x > max)
		return 0;
	*v = x;
	return 1;
}

/* -?digits[.digits], 1-4 fraction digits (spec section 4), in 1e-4 units.
 * Huge values saturate (they are out of every range anyway). */
#define FIX_SAT 100000L /* m/s or rad/s; times 1e4 still fits int32 */
static uint8_t parse_fix(const char *s, int32_t *v)
{
	uint8_t neg = 0, n = 0, f = 0;
	int32_t x = 0;
	if (*s == '-') {
		neg = 1;
		s++;
	}
	for (; is_digit(*s); s++) {
		if (++n > 15)
			return 0;
		x = x * 10 + (*s - '0');
		if (x > FIX_SAT)
			x = FIX_SAT;
	}
	if (n == 0)
		return 0;
	x *= 10000;
	if (*s == '.') {
		int32_t scale = 1000;
		for (s++; is_digit(*s); s++) {
			if (++f > 4)
				return 0;
			x += (*s - '0') * scale;
			scale /= 10;
		}
		if (f == 0)
			return 0;
	}
	if (*s)
		return 0;
	*v = neg ? -x : x;
	return 1;
}

/* Split "key=value" in place at the first '='; returns the value (maybe
 * empty), or NULL without '=' or with an empty key. */
static char *split_kv(char *t)
{
	char *eq = strchr(t, '=');
	if (!eq || eq == t)
		return NULL;
	*eq = 0;
	return eq + 1;
}

/* ---- verbs ---- */

static void do_vel(void)
{
	int32_t lin, ang;
	if (ntok != 4 || !parse_fix(tok[2], &lin) || !parse_fix(tok[3], &ang) ||
	    lin > 10 * cfg.max_lin || lin < -10 * cfg.max_lin ||
	    ang > 10 * cfg.max_ang || ang < -10 * cfg.max_ang) {
		err(seq, E_RANGE, t_range, NULL);
	} else if (ctl_state() == ST_ES) {
		err(seq, E_ESTOP, t_estop, NULL);
	} else if (ctl_seq_is_stale(seq)) {
		err(seq, E_STALE, t_stale, NULL);
	} else {
		ctl_vel(lin, ang, seq);
		begin_ok();
	}
}

static void do_hb(void)
{
	if (ntok != 2)
		err(seq, E_RANGE, t_range, NULL);
	else if (ctl_state() == ST_ES)
		err(seq, E_ESTOP, t_estop, NULL);
	else if (ctl_seq_is_stale(seq))
		err(seq, E_STALE, t_stale, NULL);
	else {
		ctl_hb(seq);
		begin_ok();
	}
}

/* SET: validate everything into a copy, then commit: all or nothing. */
static void do_set(void)
{
	struct settings n = cfg;
	if (ntok < 3) {
		err(seq, E_RANGE, t_range, NULL);
		return;
	}
	for (uint8_t i = 2; i < ntok; i++) {
		char *k = tok[i];
		char *v = split_kv(k);
		uint32_t u = 0;
		int32_t x = 0;
		uint8_t ok = 0;
		if (!v)
			ok = 0;
		else if (!strcmp_P(k, PSTR("wdog_ms")))
			ok = parse_uint(v, 5000, &u) && u >= 50 && (n.wdog_ms = (uint16_t)u, 1);
		else if (!strcmp_P(k, PSTR("tlm_hz")))
			ok = parse_uint(v, 50, &u) && (n.tlm_hz = (uint8_t)u, 1);
		else if (!strcmp_P(k, PSTR("strict")))
			ok = parse_uint(v, 1, &u) && (n.strict = (uint8_t)u, 1);
		else if (!strcmp_P(k, PSTR("max_lin")))
			ok = parse_fix(v, &x) && x > 0 && x <= MAX_LIN_CAP && (n.max_lin = x, 1);
		else if (!strcmp_P(k, PSTR("max_ang")))
			ok = parse_fix(v, &x) && x > 0 && x <= MAX_ANG_CAP && (n.max_ang = x, 1);
		if (!ok) {
			err(seq, E_RANGE, NULL, k);
			return;
		}
	}
	uint8_t hz_changed = n.tlm_hz != cfg.tlm_hz;
	cfg = n;
	if (hz_changed)
		ctl_tlm_restart();
	begin_ok();
}

static void do_get(void)
{
	if (ntok != 3) {
		err(seq, E_RANGE, t_range, NULL);
		return;
	}
	const char *k = tok[2];
	int32_t vl, vr;
	ctl_wheels(&vl, &vr);
	begin_ok();
	out_c(' ');
	out_s(k);
	out_c('=');
	if (!strcmp_P(k, PSTR("wdog_ms")))
		out_u32(cfg.wdog_ms);
	else if (!strcmp_P(k, PSTR("tlm_hz")))
		out_u32(cfg.tlm_hz);
	else if (!strcmp_P(k, PSTR("strict")))
		out_u32(cfg.strict);
	else if (!strcmp_P(k, PSTR("max_lin")))
		out_fix(cfg.max_lin, 3);
	else if (!strcmp_P(k, PSTR("max_ang")))
		out_fix(cfg.max_ang, 3);
	else if (!strcmp_P(k, PSTR("st")))
		out_p(ctl_state_name(ctl_state()));
	else if (!strcmp_P(k, PSTR("vl")))
		out_fix(vl, 3);
	else if (!strcmp_P(k, PSTR("vr")))
		out_fix(vr, 3);
	else if (!strcmp_P(k, PSTR("lseq")))
		out_u32(ctl_lseq());
	else if (!strcmp_P(k, PSTR("ovf")))
		out_u32(ctl_overflows());
	else if (!strcmp_P(k, PSTR("lights")))
		out_u32(ctl_lights());
	else if (!strcmp_P(k, PSTR("t_ms")))
		out_u32(hw_millis());
	else if (!strcmp_P(k, PSTR("pwm"))) {
		/* what the output pins carry right now: left,right signed duty */
		int16_t l, r;
		hw_outputs(&l, &r);
		out_i32(l);
		out_c(',');
		out_i32(r);
	} else
		err(seq, E_RANGE, NULL, k);
}

static void do_out(void)
{
	int8_t lights = -1;
	if (ntok < 3) {
		err(seq, E_RANGE, t_range, NULL);
		return;
	}
	for (uint8_t i = 2; i < ntok; i++) {
		char *k = tok[i];
		char *v = split_kv(k);
		if (v && !strcmp_P(k, PSTR("lights")) && (v[0] == '0' || v[0] == '1') && !v[1]) {
			lights = (int8_t)(v[0] - '0');
		} else {
			err(seq, E_RANGE, NULL, k);
			return;
		}
	}
	if (ctl_state() == ST_ES) {
		err(seq, E_ESTOP, t_estop, NULL);
		return;
	}
	if (lights >= 0)
		ctl_set_lights((uint8_t)lights);
	begin_ok();
}

/* Sends the line in `out`, and remembers it when it is a one-shot reply. */
static void reply(uint8_t remember)
{
	if (remember) {
		uint8_t n;
		const char *t = out_text(&n);
		if (n <= CACHE_MAX) {
			memcpy(cache, t, n);
			cache_len = n;
			cache_seq = seq;
		} else {
			cache_seq = 0;
		}
	}
	out_send(); /* REPLY_ROOM was checked before the line ran */
}

static void event(const char *text_P)
{
	out_begin();
	out_p(text_P);
	out_send();
}

static void run_line(void)
{
	uint8_t has_cs = 0;

	/* checksum: "*HH" at the very end, HH upper-case hex of the XOR before '*' */
	char *star = memchr(line, '*', llen);
	if (star) {
		uint8_t body = (uint8_t)(star - line), cs = 0, want = 0;
		uint8_t ok = llen == body + 3u;
		for (uint8_t i = 1; ok && i <= 2; i++) {
			char c = star[i];
			if (is_digit(c))
				want = (uint8_t)(want << 4 | (uint8_t)(c - '0'));
			else if (c >= 'A' && c <= 'F')
				want = (uint8_t)(want << 4 | (uint8_t)(c - 'A' + 10));
			else
				ok = 0;
		}
		for (uint8_t i = 0; i < body; i++)
			cs ^= (uint8_t)line[i];
		if (!ok || cs != want) {
			err(0, E_CHECKSUM, t_checksum, NULL);
			out_send();
			return;
		}
		llen = body;
		has_cs = 1;
	}
	line[llen] = 0;

	/* tokens, separated by single spaces */
	ntok = 0;
	char *p = line;
	uint8_t empty_tok = 0;
	for (;;) {
		if (ntok == MAX_TOKENS) {
			empty_tok = 1; /* more would need an empty token */
			break;
		}
		tok[ntok++] = p;
		char *sp = strchr(p, ' ');
		if (*p == 0 || p == sp)
			empty_tok = 1;
		if (!sp)
			break;
		*sp = 0;
		p = sp + 1;
	}

	uint32_t s;
	if (!parse_uint(tok[0], 65535, &s) || s == 0) {
		err(0, E_PARSE, t_parse, NULL);
		out_send();
		return;
	}
	seq = (uint16_t)s;
	if (cfg.strict && !has_cs) {
		err(seq, E_CHECKSUM, t_required, NULL);
		out_send();
		return;
	}
	const char *verb = ntok > 1 ? tok[1] : "";
	uint8_t verb_ok = *verb != 0;
	for (const char *v = verb; *v; v++)
		if (*v < 'A' || *v > 'Z')
			verb_ok = 0;
	if (!verb_ok || empty_tok) {
		err(seq, E_PARSE, t_parse, NULL);
		out_send();
		return;
	}
	/* setpoints */
	if (!strcmp_P(verb, PSTR("VEL"))) {
		do_vel();
		reply(0);
		return;
	}
	if (!strcmp_P(verb, PSTR("HB"))) {
		do_hb();
		reply(0);
		return;
	}

	/* one-shot: a resend of the last one is answered, not run again */
	if (cache_seq && seq == cache_seq) {
		if (cache_hello) {
			proto_hello();
			out_send();
		}
		out_begin();
		for (uint8_t i = 0; i < cache_len; i++)
			out_c(cache[i]);
		out_send();
		return;
	}
	cache_hello = 0;
	if (!strcmp_P(verb, PSTR("PING"))) {
		begin_ok();
	} else if (!strcmp_P(verb, PSTR("VER"))) {
		proto_hello();
		out_send();
		cache_hello = 1;
		begin_ok();
	} else if (!strcmp_P(verb, PSTR("STOP"))) {
		ctl_stop();
		begin_ok();
	} else if (!strcmp_P(verb, PSTR("ESTOP"))) {
		if (ctl_estop())
			event(PSTR("EVT ESTOP src=cmd"));
		begin_ok();
	} else if (!strcmp_P(verb, PSTR("CLEAR"))) {
		if (ctl_clear())
			event(PSTR("EVT CLEARED"));
		begin_ok();
	} else if (!strcmp_P(verb, PSTR("SET"))) {
		do_set();
	} else if (!strcmp_P(verb, PSTR("GET"))) {
		do_get();
	} else if (!strcmp_P(verb, PSTR("OUT"))) {
		do_out();
	} else if (!strcmp_P(verb, PSTR("RESET"))) {
		reset_requested = 1;
		begin_ok();
	} else {
		err(seq, E_UNKNOWN, t_unknown, NULL);
	}
	reply(1);
}

void proto_poll(void)
{
	if (reset_requested)
		return; /* nothing more runs; main reboots once the OK is out */
	for (;;) {
		if (uart_tx_free() < REPLY_ROOM)
			return;
		int16_t c = uart_getc();
		if (c < 0)
			return;
		switch (c) {
		case RX_ESTOP:
			ATOMIC_BLOCK(ATOMIC_FORCEON) {
				estop_unseen--;
			}
			line_reset(); /* the partial line is discarded */
			ctl_estop_byte();
			return;       /* EVT ESTOP goes out before the next line runs */
		case RX_RESYNC:
			line_reset();
			cache_seq = 0;
			ctl_forget_seq();
			continue;
		case RX_DROP:
			lflags |= L_DROP;
			continue;
		case RX_CUT:
			line_reset();
			continue;
		case '\r':
			continue;
		case '\n':
			if (lflags & L_DROP)
				; /* damaged by an overflow: EVT OVERFLOW reports it */
			else if (lflags & L_LONG) {
				err(0, E_TOOLONG, t_toolong, NULL);
				out_send();
			} else if (lflags & L_BAD) {
				err(0, E_PARSE, t_parse, NULL);
				out_send();
			} else if (llen > 0) {
				run_line();
			}
			line_reset();
			return; /* at most one line per call */
		default:
			if (c < 0x20 || c >= 0x7F)
				lflags |= L_BAD;
			else if (llen < LINE_MAX - 1)
				line[llen++] = (char)c;
			else
				lflags |= L_LONG;
		}
	}
}
