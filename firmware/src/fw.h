/*
 * fw.h: how the firmware's parts fit together (firmware-protocol.md v1).
 *
 *   uart.c   UART0 rings; the RX interrupt acts on the reserved bytes
 *   hw.c     1 ms tick, motor PWM/direction, lights, LED, boot-time watchdog fix
 *   out.c    builds one device->host line at a time and appends *HH
 *   proto.c  assembles host lines, checks them, runs the verbs, reply cache
 *   ctl.c    states RDY/FS/ES, setpoints, diff drive, device watchdog, TLM/EVT
 *   main.c   init and the never-blocking main loop
 */
#ifndef TELEOP_FW_H
#define TELEOP_FW_H

#include <stdint.h>

#include <avr/pgmspace.h>

/* ---- uart.c ---- */

/* Reserved bytes (protocol section 3). */
#define RT_BYTE_ESTOP  '!'
#define RT_BYTE_RESYNC 0x18
#define RT_BYTE_TLM    '?'

/* rt_flags: set by the RX interrupt, cleared by the main loop. */
#define RT_TLM      0x01 /* '?' received: emit one TLM */
#define RT_OVERFLOW 0x02 /* RX ring overflowed: emit EVT OVERFLOW */
extern volatile uint8_t rt_flags;

/* '!' bytes whose RX_ESTOP marker the main loop has not read yet (ISR ++,
 * main loop -- with interrupts off). While non-zero, CLEAR cannot release
 * the output latch: that e-stop came after the CLEAR. */
extern volatile uint8_t estop_unseen;

/* In-band markers the RX interrupt puts in the ring (raw control bytes from
 * the host are stored as RX_BADBYTE, so they can never look like these). */
#define RX_DROP    0x01 /* bytes were lost: discard the line through its '\n', silently */
#define RX_RESYNC  0x02 /* 0x18 arrived here */
#define RX_ESTOP   0x03 /* '!' arrived here */
#define RX_CUT     0x04 /* bytes were lost up to a '\n': discard the partial line */
#define RX_BADBYTE 0x1F /* stands for any forbidden control byte */

/* Longest host line, including '\n'; longest device line, including '\n'. */
#define LINE_MAX 64
#define OUT_MAX  128

void uart_init(void);
int16_t uart_getc(void);          /* -1 when the ring is empty */
uint8_t uart_rx_pending(void);
uint8_t uart_tx_free(void);
uint8_t uart_tx_idle(void);       /* ring empty and the last stop bit sent */
void uart_write(const char *s, uint8_t n);

/* ---- hw.c ---- */
extern uint8_t reset_cause;       /* MCUSR at boot */
void hw_init(void);
uint32_t hw_millis(void);
void hw_kill(void);               /* ISR-safe: all motor outputs safe */
void hw_motors(int16_t left, int16_t right); /* signed PWM duty, +-255 */
void hw_outputs(int16_t *left, int16_t *right); /* duty the pins really carry */
void hw_led(uint8_t on);
void hw_lights(uint8_t on);

/* ---- out.c ---- */
void out_begin(void);
void out_c(char c);
void out_s(const char *s);
void out_p(const char *progmem_s);
#define out_P(s) out_p(PSTR(s))
void out_u32(uint32_t v);
void out_i32(int32_t v);
void out_fix(int32_t v, uint8_t decimals); /* v in 1e-4 units, printed with 1..4 decimals */
uint8_t out_len(void);            /* bytes the line needs, with *HH and '\n' */
uint8_t out_send(void);           /* queue it if it fits: 1 sent, 0 no room */
const char *out_text(uint8_t *n); /* the line so far (no *HH) */

/* ---- ctl.c ---- */
enum state { ST_RDY, ST_FS, ST_ES };

struct settings {
	uint16_t wdog_ms;
	uint8_t tlm_hz;
	uint8_t strict;
	int32_t max_lin; /* 1e-4 m/s */
	int32_t max_ang; /* 1e-4 rad/s */
};
extern struct settings cfg;

void ctl_init(void);
void ctl_estop_isr(void);         /* from the RX interrupt: outputs off, latched */
uint8_t ctl_estop_latched(void);  /* outputs must stay off */
enum state ctl_state(void);
void ctl_estop_byte(void);        /* the main loop reached an RX_ESTOP marker */
uint8_t ctl_estop(void);          /* ESTOP verb; 1 when the state changed */
uint8_t ctl_clear(void);          /* 1 when the state changed */
void ctl_stop(void);
void ctl_vel(int32_t lin, int32_t ang, uint16_t seq);
void ctl_hb(uint16_t seq);
uint16_t ctl_lseq(void);
void ctl_forget_seq(void);        /* RESYNC */
uint8_t ctl_seq_is_stale(uint16_t seq);
void ctl_wheels(int32_t *vl, int32_t *vr); /* 1e-4 m/s */
uint8_t ctl_lights(void);
void ctl_set_lights(uint8_t on);
uint8_t ctl_poll(uint32_t now);   /* watchdog, LED, EVT/TLM; 1 when no EVT waits */
void ctl_tlm_now(void);
void ctl_tlm_restart(void);      /* tlm_hz changed */
void ctl_note_overflow(void);
uint16_t ctl_overflows(void);
const char *ctl_state_name(enum state s); /* PROGMEM */
void ctl_put_tlm(uint32_t now);   /* builds a TLM line in out */

/* ---- proto.c ---- */
void proto_hello(void);           /* builds the HELLO line in out */
void proto_poll(void);            /* consume received bytes, run at most one line */
uint8_t proto_reset_requested(void);

#endif /* TELEOP_FW_H */
