/*
 * hw.c: the 1 ms tick, motor outputs, LED, and the AVR watchdog at boot.
 *
 * Motor outputs are changed only with interrupts off, and hw_motors() refuses
 * to drive while the e-stop latch is set, so the RX interrupt's hw_kill()
 * can never be undone by a main-loop write that it interrupted.
 */
#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/wdt.h>
#include <util/atomic.h>

#include "board.h"
#include "fw.h"

static volatile uint32_t tick_ms;
/* MCUSR at reset; in .noinit because .bss is cleared after .init3 runs. */
uint8_t reset_cause __attribute__((section(".noinit")));

/*
 * After a watchdog reset the watchdog stays enabled (WDRF forces WDE) with
 * its shortest timeout, 16 ms: longer than that and the C runtime's .bss
 * clearing alone could reset the board again, forever. So clear MCUSR and
 * turn the watchdog off before main() (avr-libc FAQ); main enables it again.
 */
void hw_early_boot(void) __attribute__((naked, used, section(".init3")));
void hw_early_boot(void)
{
	uint8_t r2;
	__asm__ __volatile__("mov %0, r2" : "=r"(r2));
	reset_cause = MCUSR;
	/* optiboot clears MCUSR itself; version 6 and later pass it in r2 */
	if (reset_cause == 0)
		reset_cause = r2;
	MCUSR = 0;
	wdt_disable();
}

void hw_init(void)
{
	/* Outputs low = motors off, driver disabled, LED off. */
	EN_PORT &= (uint8_t)~_BV(EN_BIT);
	L_PWM_PORT &= (uint8_t)~_BV(L_PWM_BIT);
	R_PWM_PORT &= (uint8_t)~_BV(R_PWM_BIT);
	L_DIR_PORT &= (uint8_t)~_BV(L_DIR_BIT);
	R_DIR_PORT &= (uint8_t)~_BV(R_DIR_BIT);
	LED_PORT &= (uint8_t)~_BV(LED_BIT);
	LIGHTS_PORT &= (uint8_t)~_BV(LIGHTS_BIT);
	LIGHTS_DDR |= _BV(LIGHTS_BIT);
	EN_DDR |= _BV(EN_BIT);
	L_PWM_DDR |= _BV(L_PWM_BIT);
	R_PWM_DDR |= _BV(R_PWM_BIT);
	L_DIR_DDR |= _BV(L_DIR_BIT);
	R_DIR_DDR |= _BV(R_DIR_BIT);
	LED_DDR |= _BV(LED_BIT);

	/* Timer0: PWM with both compare outputs disconnected until needed. */
	OCR0A = 0;
	OCR0B = 0;
	TCCR0A = PWM_TCCR0A;
	TCCR0B = PWM_TCCR0B;

	/* Timer1: 1 kHz tick. */
	TCCR1A = 0;
	TCCR1B = TICK_TCCR1B;
	OCR1A = TICK_OCR1A;
	TIMSK1 = _BV(OCIE1A);
}

ISR(TIMER1_COMPA_vect)
{
	tick_ms++;
}

uint32_t hw_millis(void)
{
	uint32_t t;
	ATOMIC_BLOCK(ATOMIC_RESTORESTATE) {
		t = tick_ms;
	}
	return t;
}

/* All outputs safe: compare outputs disconnected (fast PWM would still emit a
 * one-cycle pulse at OCR=0), PWM pins low, driver disabled. Called from the
 * RX interrupt for '!' and with interrupts off from the main loop. */
void hw_kill(void)
{
	TCCR0A = PWM_TCCR0A;
	OCR0A = 0;
	OCR0B = 0;
	L_PWM_PORT &= (uint8_t)~_BV(L_PWM_BIT);
	R_PWM_PORT &= (uint8_t)~_BV(R_PWM_BIT);
	EN_PORT &= (uint8_t)~_BV(EN_BIT);
}

static uint8_t magnitude(int16_t d)
{
	if (d < 0)
		d = (int16_t)-d;
	return d > PWM_MAX ? PWM_MAX : (uint8_t)d;
}

void hw_motors(int16_t left, int16_t right)
{
	uint8_t l = magnitude(left), r = magnitude(right);
	ATOMIC_BLOCK(ATOMIC_FORCEON) {
		if (ctl_estop_latched() || (l == 0 && r == 0)) {
			hw_kill();
		} else {
			uint8_t com = 0;
			if (left >= 0)
				L_DIR_PORT |= _BV(L_DIR_BIT);
			else
				L_DIR_PORT &= (uint8_t)~_BV(L_DIR_BIT);
			if (right >= 0)
				R_DIR_PORT |= _BV(R_DIR_BIT);
			else
				R_DIR_PORT &= (uint8_t)~_BV(R_DIR_BIT);
			L_PWM_OCR = l;
			R_PWM_OCR = r;
			if (l)
				com |= L_PWM_COM;
			else
				L_PWM_PORT &= (uint8_t)~_BV(L_PWM_BIT);
			if (r)
				com |= R_PWM_COM;
			else
				R_PWM_PORT &= (uint8_t)~_BV(R_PWM_BIT);
			TCCR0A = PWM_TCCR0A | com;
			EN_PORT |= _BV(EN_BIT);
		}
	}
}

/* What the pins really do, for telemetry: signed duty, 0 when disconnected. */
void hw_outputs(int16_t *left, int16_t *right)
{
	ATOMIC_BLOCK(ATOMIC_FORCEON) {
		uint8_t a = TCCR0A;
		uint8_t en = EN_PORT & _BV(EN_BIT);
		int16_t l = (en && (a & L_PWM_COM)) ? L_PWM_OCR : 0;
		int16_t r = (en && (a & R_PWM_COM)) ? R_PWM_OCR : 0;
		*left = (L_DIR_PORT & _BV(L_DIR_BIT)) ? l : (int16_t)-l;
		*right = (R_DIR_PORT & _BV(R_DIR_BIT)) ? r : (int16_t)-r;
	}
}

void hw_led(uint8_t on)
{
	ATOMIC_BLOCK(ATOMIC_FORCEON) {
		if (on)
			LED_PORT |= _BV(LED_BIT);
		else
			LED_PORT &= (uint8_t)~_BV(LED_BIT);
	}
}

void hw_lights(uint8_t on)
{
	ATOMIC_BLOCK(ATOMIC_FORCEON) {
		if (on)
			LIGHTS_PORT |= _BV(LIGHTS_BIT);
		else
			LIGHTS_PORT &= (uint8_t)~_BV(LIGHTS_BIT);
	}
}
