/*
 * main.c: init, then a loop that never blocks: pending events and telemetry
 * first, then at most one host line, then sleep until the next interrupt
 * (the 1 ms tick or a UART byte). The AVR watchdog (250 ms) is fed once per
 * pass, so a hang anywhere reboots the board and the host sees a new HELLO.
 */
#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/sleep.h>
#include <avr/wdt.h>

#include "board.h"
#include "fw.h"

static void boot_banner(void)
{
	proto_hello();
	out_send();
	out_begin();
	out_P("# reset=");
	if (reset_cause & _BV(WDRF))
		out_P("watchdog");
	else if (reset_cause & _BV(BORF))
		out_P("brownout");
	else if (reset_cause & _BV(EXTRF))
		out_P("external");
	else if (reset_cause & _BV(PORF))
		out_P("power");
	else
		out_P("unknown"); /* a jump to 0, e.g. from a bootloader */
	out_send();
}

/* RESET: once the OK has left the UART, let the watchdog reboot us. */
static void reboot(void) __attribute__((noreturn));
static void reboot(void)
{
	cli();
	hw_kill();
	wdt_enable(WDTO_15MS);
	for (;;) {
	}
}

int main(void)
{
	hw_init();
	ctl_init();
	uart_init();
	wdt_enable(WDTO_250MS);
	set_sleep_mode(SLEEP_MODE_IDLE);
	sei();
	boot_banner();

	for (;;) {
		wdt_reset();
		uint32_t now = hw_millis();
		if (ctl_poll(now))
			proto_poll();
		if (proto_reset_requested() && uart_tx_idle())
			reboot();

		cli();
		if (!uart_rx_pending() && !rt_flags) {
			sleep_enable();
			sei();
			sleep_cpu();
			sleep_disable();
		}
		sei();
	}
}
