/*
 * out.c: one device->host line at a time. The line is built in a buffer,
 * then out_send() appends "*HH\n" and queues it whole, or not at all, so
 * lines never interleave and the main loop never waits for the UART.
 */
#include "fw.h"

#define BODY_MAX (OUT_MAX - 4) /* room for "*HH\n" */

static char buf[OUT_MAX];
static uint8_t len;

void out_begin(void)
{
	len = 0;
}

void out_c(char c)
{
	if (len < BODY_MAX)
		buf[len++] = c;
}

void out_s(const char *s)
{
	while (*s)
		out_c(*s++);
}

void out_p(const char *s)
{
	char c;
	while ((c = (char)pgm_read_byte(s++)) != 0)
		out_c(c);
}

void out_u32(uint32_t v)
{
	char tmp[10];
	uint8_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10u);
		v /= 10u;
	} while (v);
	while (n)
		out_c(tmp[--n]);
}

void out_i32(int32_t v)
{
	if (v < 0) {
		out_c('-');
		out_u32((uint32_t)0 - (uint32_t)v);
	} else {
		out_u32((uint32_t)v);
	}
}

void out_fix(int32_t v, uint8_t decimals)
{
	/* v is in 1e-4 units; round half away from zero to the wanted digits */
	static const uint16_t scale[] = { 10000, 1000, 100, 10, 1 };
	if (decimals < 1)
		decimals = 1;
	if (decimals > 4)
		decimals = 4;
	uint16_t drop = scale[decimals]; /* 1e-4 units per last printed digit */
	uint32_t m = v < 0 ? (uint32_t)0 - (uint32_t)v : (uint32_t)v;
	m = (m + drop / 2u) / drop;      /* now in units of the last digit */
	if (v < 0 && m != 0)
		out_c('-');
	uint16_t one = scale[4 - decimals]; /* units of the last digit per 1 */
	out_u32(m / one);
	out_c('.');
	uint32_t frac = m % one;
	for (uint16_t d = one / 10u; d; d /= 10u) {
		out_c((char)('0' + frac / d));
		frac %= d;
	}
}

uint8_t out_len(void)
{
	return (uint8_t)(len + 4u);
}

const char *out_text(uint8_t *n)
{
	*n = len;
	return buf;
}

static char hex(uint8_t v)
{
	return (char)(v < 10 ? '0' + v : 'A' + v - 10);
}

uint8_t out_send(void)
{
	if (uart_tx_free() < out_len())
		return 0;
	uint8_t cs = 0;
	for (uint8_t i = 0; i < len; i++)
		cs ^= (uint8_t)buf[i];
	buf[len] = '*';
	buf[len + 1] = hex(cs >> 4);
	buf[len + 2] = hex(cs & 0x0F);
	buf[len + 3] = '\n';
	uart_write(buf, (uint8_t)(len + 4u));
	return 1;
}
