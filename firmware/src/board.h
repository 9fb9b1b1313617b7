/*
 * board.h: Arduino Uno (ATmega328P, 16 MHz) pin map and clock for the teleop
 * reference firmware. Everything that depends on the wiring lives here.
 *
 *   Uno pin  AVR pin  function
 *   D0/D1    PD0/PD1  UART0 RX/TX to the USB bridge, 115200 8N1
 *   D4       PD4      motor driver enable/standby (high = enabled), low when safe
 *   D5       PD5      left motor PWM  (OC0B, Timer0 fast PWM)
 *   D6       PD6      right motor PWM (OC0A, Timer0 fast PWM)
 *   D7       PD7      left motor direction  (high = forward)
 *   D8       PB0      right motor direction (high = forward)
 *   D12      PB4      lights (OUT lights=0|1)
 *   D13      PB5      e-stop LED (on while e-stopped; blinks in failsafe)
 *
 * Timers: Timer0 = motor PWM (7.8 kHz), Timer1 = 1 ms tick (CTC), Timer2 free.
 * A TB6612FNG or L298N-style driver fits: PWM + DIR per motor, STBY/EN on D4.
 */
#ifndef TELEOP_BOARD_H
#define TELEOP_BOARD_H

#include <avr/io.h>

#ifndef F_CPU
#define F_CPU 16000000UL
#endif

#define BOARD_ID   "uno"
#define FW_NAME    "teleop-uno"
#define FW_VERSION "0.1.0"

/* UART0. At 16 MHz, 115200 baud needs U2X with UBRR=16: +2.1% error, just
 * above setbaud.h's default 2% tolerance. Every Uno (and its 16U2 bridge,
 * which has the same error) runs like this, so allow 3%. */
#define BAUD     115200UL
#define BAUD_TOL 3

/* Motor driver enable (TB6612 STBY / L298N ENA+ENB tied): D4 = PD4. */
#define EN_DDR   DDRD
#define EN_PORT  PORTD
#define EN_BIT   PD4

/* Left motor: PWM on D5 = OC0B (PD5), direction on D7 (PD7). */
#define L_PWM_DDR  DDRD
#define L_PWM_PORT PORTD
#define L_PWM_BIT  PD5
#define L_PWM_OCR  OCR0B
#define L_PWM_COM  _BV(COM0B1)
#define L_DIR_DDR  DDRD
#define L_DIR_PORT PORTD
#define L_DIR_BIT  PD7

/* Right motor: PWM on D6 = OC0A (PD6), direction on D8 (PB0). */
#define R_PWM_DDR  DDRD
#define R_PWM_PORT PORTD
#define R_PWM_BIT  PD6
#define R_PWM_OCR  OCR0A
#define R_PWM_COM  _BV(COM0A1)
#define R_DIR_DDR  DDRB
#define R_DIR_PORT PORTB
#define R_DIR_BIT  PB0

/* Lights (auxiliary output "lights"): D12 = PB4. */
#define LIGHTS_DDR  DDRB
#define LIGHTS_PORT PORTB
#define LIGHTS_BIT  PB4

/* E-stop LED: D13 = PB5 (the on-board "L" LED). */
#define LED_DDR  DDRB
#define LED_PORT PORTB
#define LED_BIT  PB5

/* Timer0: fast PWM (WGM01|WGM00), clk/8 -> 16 MHz / 8 / 256 = 7.8 kHz. */
#define PWM_TCCR0A (_BV(WGM01) | _BV(WGM00))
#define PWM_TCCR0B _BV(CS01)
#define PWM_MAX    255

/* Timer1: CTC on OCR1A, clk/8, 2000 counts -> 1 kHz tick. */
#define TICK_TCCR1B (_BV(WGM12) | _BV(CS11))
#define TICK_OCR1A  1999

/* Drive geometry and limits (fixed point: speeds in 1e-4 m/s, rates in 1e-4 rad/s).
 * WHEEL_MAX is the wheel speed at full PWM; VEL is clamped to max_lin/max_ang
 * (settable up to the caps), wheel speeds to WHEEL_MAX keeping the curvature. */
#define TRACK_MM        300L    /* wheel separation */
#define WHEEL_MAX       10000L  /* 1.0 m/s at PWM 255 */
#define MAX_LIN_DEFAULT 10000L  /* 1.0 m/s */
#define MAX_LIN_CAP     WHEEL_MAX
#define MAX_ANG_DEFAULT 40000L  /* 4.0 rad/s */
#define MAX_ANG_CAP     100000L /* 10.0 rad/s */

#endif /* TELEOP_BOARD_H */
