/*
 * uart.c: UART0 with interrupt-driven RX and TX rings.
 *
 * The RX interrupt takes the reserved bytes out of the stream the moment they
 * arrive, so they work mid-line and with a full ring:
 *   '!'   e-stop: outputs off and latched inside the ISR (ctl_estop_isr)
 *   0x18  resync
 *   '?'   one telemetry line as soon as the main loop runs (RT_TLM)
 * '!' and 0x18 also leave a marker (RX_ESTOP, RX_RESYNC) in the ring, so the
 * main loop sees them in stream order: a CLEAR sent before a '!' cannot undo
 * it, and the partial line they cut is known. Every other byte goes to the
 * ring. When the ring is full the byte is lost: the ISR raises RT_OVERFLOW
 * (once per run of lost bytes) and queues RX_DROP or RX_CUT so the damaged
 * line is discarded; markers that find the ring full wait in rx_pend until
 * uart_getc() makes room.
 *
 * Ownership: rx_head, rx_pend and tx_tail are written by the ISRs, rx_tail
 * and tx_head by the main loop.
 */
#include <avr/interrupt.h>
#include <avr/io.h>
#include <util/atomic.h>

#include "board.h"
#include "fw.h"

#include <util/setbaud.h>

#define RX_SIZE 128u /* power of two; holds two full lines */
#define TX_SIZE 256u /* uint8_t indices wrap by themselves */

static volatile uint8_t rx_buf[RX_SIZE];
static volatile uint8_t rx_head, rx_tail;
/* markers waiting for ring space, pushed in this order */
#define PEND_ESTOP  0x01
#define PEND_RESYNC 0x02
#define PEND_DROP   0x04
static volatile uint8_t rx_pend;
static volatile uint8_t lost_nl; /* the last byte lost was '\n' */

static volatile uint8_t tx_buf[TX_SIZE];
static volatile uint8_t tx_head, tx_tail;

volatile uint8_t rt_flags;

void uart_init(void)
{
	/* U2X before UBRR: simavr derives its byte time when UBRR0L is written
	 * (without U2X it would model 57600 baud); the order is free on silicon. */
#if USE_2X
	UCSR0A = _BV(U2X0);
#else
	UCSR0A = 0;
#endif
	UBRR0H = UBRRH_VALUE;
	UBRR0L = UBRRL_VALUE;
	UCSR0C = _BV(UCSZ01) | _BV(UCSZ00); /* 8N1 */
	UCSR0B = _BV(RXEN0) | _BV(TXEN0) | _BV(RXCIE0);
}

static inline uint8_t rx_push(uint8_t c)
{
	uint8_t next = (uint8_t)((rx_head + 1u) & (RX_SIZE - 1u));
	if (next == rx_tail)
		return 0;
	rx_buf[rx_head] = c;
	rx_head = next;
	return 1;
}

/* Push waiting markers; 1 when none is left. Interrupts off: the RX ISR,
 * or uart_getc() as soon as it has made room. A loss that ended with a
 * '\n' leaves RX_CUT (the damaged line is over), else RX_DROP. */
static inline uint8_t rx_flush_pend(void)
{
	if ((rx_pend & PEND_ESTOP) && rx_push(RX_ESTOP))
		rx_pend &= (uint8_t)~PEND_ESTOP;
	if (!(rx_pend & PEND_ESTOP) && (rx_pend & PEND_RESYNC) && rx_push(RX_RESYNC))
		rx_pend &= (uint8_t)~PEND_RESYNC;
	if (!(rx_pend & (PEND_ESTOP | PEND_RESYNC)) && (rx_pend & PEND_DROP) &&
	    rx_push(lost_nl ? RX_CUT : RX_DROP))
		rx_pend &= (uint8_t)~PEND_DROP;
	return rx_pend == 0;
}

ISR(USART_RX_vect)
{
	uint8_t status = UCSR0A; /* read before UDR0: FE0/DOR0 belong to this byte */
	uint8_t c = UDR0;

	switch (c) {
	case RT_BYTE_ESTOP:
		ctl_estop_isr();
		if (!(rx_pend & PEND_ESTOP)) {
			rx_pend |= PEND_ESTOP; /* one marker per count */
			estop_unseen++;
		}
		rx_flush_pend();
		return;
	case RT_BYTE_RESYNC:
		/* the resync discards the damaged partial line anyway */
		rx_pend = (uint8_t)((rx_pend & ~PEND_DROP) | PEND_RESYNC);
		rx_flush_pend();
		return;
	case RT_BYTE_TLM:
		rt_flags |= RT_TLM;
		return;
	}
	if (status & (_BV(FE0) | _BV(DOR0))) {
		rx_pend |= PEND_DROP; /* a garbled or missed byte damages this line */
		lost_nl = 0;
	}
	if (c < 0x20 && c != '\n' && c != '\r')
		c = RX_BADBYTE; /* never confused with a marker */
	if (rx_flush_pend() && rx_push(c))
		return;
	if (!(rx_pend & PEND_DROP))
		rt_flags |= RT_OVERFLOW; /* one EVT OVERFLOW per run of lost bytes */
	rx_pend |= PEND_DROP;
	lost_nl = c == '\n';
}

int16_t uart_getc(void)
{
	int16_t c = -1;
	ATOMIC_BLOCK(ATOMIC_FORCEON) {
		if (rx_tail != rx_head) {
			c = rx_buf[rx_tail];
			rx_tail = (uint8_t)((rx_tail + 1u) & (RX_SIZE - 1u));
			if (rx_pend)
				rx_flush_pend(); /* mark a loss where it happened */
		}
	}
	return c;
}

uint8_t uart_rx_pending(void)
{
	return rx_head != rx_tail; /* single byte reads are atomic */
}

uint8_t uart_tx_free(void)
{
	return (uint8_t)(TX_SIZE - 1u - (uint8_t)(tx_head - tx_tail));
}

uint8_t uart_tx_idle(void)
{
	return tx_head == tx_tail && (UCSR0A & _BV(TXC0));
}

void uart_write(const char *s, uint8_t n)
{
	/* callers check uart_tx_free() first; never wait */
	while (n-- && uart_tx_free()) {
		tx_buf[tx_head] = (uint8_t)*s++;
		tx_head++;
	}
	/* clear "transmit complete" by writing 1; error bits must be written 0 */
	UCSR0A = (uint8_t)((UCSR0A & (_BV(U2X0) | _BV(MPCM0))) | _BV(TXC0));
	UCSR0B |= _BV(UDRIE0);
}

ISR(USART_UDRE_vect)
{
	if (tx_tail != tx_head) {
		UDR0 = tx_buf[tx_tail];
		tx_tail++;
	} else {
		UCSR0B &= (uint8_t)~_BV(UDRIE0);
	}
}
