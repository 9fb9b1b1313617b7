/*
 * simavr.c: the .mmcu section simavr reads for the MCU name and clock, in the
 * simavr build only (make fw builds both). Same layout as simavr's
 * avr_mcu_section.h AVR_MCU(), without needing libsimavr-dev to build.
 * The linker places .mmcu at 0x910000, outside flash (see Makefile).
 */
#ifdef SIMAVR
#include <stdint.h>

#include "board.h"

#define MMCU_TAG           0
#define MMCU_TAG_NAME      1
#define MMCU_TAG_FREQUENCY 2

struct mmcu_string {
	uint8_t tag;
	uint8_t len;
	char string[64];
} __attribute__((packed));

struct mmcu_long {
	uint8_t tag;
	uint8_t len;
	uint32_t val;
} __attribute__((packed));

#define MMCU __attribute__((section(".mmcu"), used))

const struct mmcu_string mmcu_name MMCU = {
	.tag = MMCU_TAG_NAME,
	.len = sizeof(struct mmcu_string) - 2,
	.string = "atmega328p",
};
const struct mmcu_long mmcu_frequency MMCU = {
	.tag = MMCU_TAG_FREQUENCY,
	.len = sizeof(struct mmcu_long) - 2,
	.val = F_CPU,
};
/* the terminator; --undefined=_mmcu keeps the section alive */
const uint8_t _mmcu[2] MMCU = { MMCU_TAG, 0 };
#else
typedef int teleop_no_simavr_section; /* ISO C wants a declaration */
#endif
