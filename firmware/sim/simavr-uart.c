/*
 * simavr-uart: run an AVR firmware ELF under simavr with UART0 on a host pty.
 *
 *   simavr-uart [-m mcu] [-f hz] [-n] [-e] [-v] firmware.elf
 *
 * SIGUSR1 resets the MCU like its reset pin (EXTRF set), as an Uno's
 * auto-reset does when the port opens.
 *
 * Prints exactly one line, "pty: /dev/pts/N", on stdout once the pty exists,
 * then closes stdout; simavr's own chatter goes to stderr. A client opens that
 * path like a USB serial port; the baud rate it sets is ignored.
 *
 * Why not simavr's parts/uart_pty: it hard-codes the /tmp/simavr-uart0 link
 * (parallel runs clobber it), moves bytes from a second thread, and only feeds
 * input after the firmware reads UCSR0A with an empty FIFO (the XON signal),
 * which an interrupt-driven receiver never does. This bridge is
 * single-threaded: a simavr cycle timer feeds one received byte per character
 * time (like a real 115200 line; a timer, so a sleeping CPU wakes for it),
 * transmitted bytes go to the pty, and simulated time is paced to
 * CLOCK_MONOTONIC so firmware timeouts run at wall-clock speed. A firmware
 * that stops reading loses bytes in the UART FIFO, like a real overrun.
 *
 *   -m mcu   MCU when the ELF has no .mmcu section (default atmega328p)
 *   -f hz    clock when the ELF states none (default 16000000; simavr would use 1 MHz)
 *   -n       no pacing: run as fast as the host allows
 *   -e       exit when stdin reaches EOF (the parent died or closed the pipe)
 *   -v       log watchdog resets, pacing slips and dropped output on stderr
 *
 * Exit: 0 on SIGTERM/SIGINT/stdin EOF or when the firmware stops (cli+sleep),
 * 1 on usage or setup errors, 2 when the simulated CPU crashes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <sim_avr.h>
#include <sim_elf.h>
#include <sim_irq.h>
#include <sim_io.h>
#include <avr_uart.h>

/* Serial line model: 115200 baud, 10 bits per character (8N1). */
#define LINE_BAUD      115200u
#define BITS_PER_CHAR  10u
/* How often (in simulated time) the bridge moves bytes and checks pacing. */
#define IO_PERIOD_NS   100000ull   /* 100 us, about one character time */
/* Simulation may run this far ahead of the wall clock before it sleeps. */
#define AHEAD_NS       1000000ll  /* 1 ms */
/* Behind the wall clock (the host was busy), it runs flat out to catch up:
 * a simulated second costs about 20 ms of CPU. Only after a long stall
 * (stopped in a debugger, SIGSTOP) does it re-base instead. */
#define BEHIND_NS      1000000000ll /* 1 s */

#define OUT_SIZE 8192u  /* firmware -> host bytes not yet written to the pty */
#define IN_SIZE  512u   /* host -> firmware bytes read from the pty, not yet fed */

static volatile sig_atomic_t stop_signal, reset_signal;

static struct {
	avr_t *avr;
	int master;              /* pty master, non-blocking */
	int verbose;

	uint8_t out[OUT_SIZE];
	size_t out_head, out_len;
	unsigned long out_dropped;

	uint8_t in[IN_SIZE];
	size_t in_pos, in_len;

	avr_irq_t *uart_in;
	avr_cycle_count_t cycles_per_char;
} br;

static void on_signal(int sig) { stop_signal = sig; }
static void on_reset(int sig) { (void)sig; reset_signal = 1; }

/* simavr calls this when the firmware sleeps; the main loop does the pacing. */
static void no_sleep(avr_t *avr, avr_cycle_count_t how_long)
{
	(void)avr; (void)how_long;
}

static void usage(void)
{
	fprintf(stderr, "usage: simavr-uart [-m mcu] [-f hz] [-n] [-e] [-v] firmware.elf\n");
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t cycles_to_ns(avr_t *avr, avr_cycle_count_t c)
{
	/* split to avoid overflow: c can reach 2^40 after a day at 16 MHz */
	uint64_t f = avr->frequency;
	return (c / f) * 1000000000ull + (c % f) * 1000000000ull / f;
}

/* UART0 transmitted a byte: queue it for the pty. */
static void uart_out_hook(struct avr_irq_t *irq, uint32_t value, void *param)
{
	(void)irq; (void)param;
	if (br.out_len == OUT_SIZE) {
		br.out_dropped++;
		return;
	}
	br.out[(br.out_head + br.out_len) % OUT_SIZE] = (uint8_t)value;
	br.out_len++;
}

/* Write queued output to the pty. With no client attached the kernel keeps
 * about 4 KB; beyond that (and OUT_SIZE here) output is dropped, as a real
 * USB-serial bridge would with nobody reading. */
static void flush_out(void)
{
	while (br.out_len > 0) {
		size_t chunk = OUT_SIZE - br.out_head;
		if (chunk > br.out_len)
			chunk = br.out_len;
		ssize_t n = write(br.master, br.out + br.out_head, chunk);
		if (n <= 0)
			return; /* EAGAIN (full) or EIO (no client yet): retry later */
		br.out_head = (br.out_head + (size_t)n) % OUT_SIZE;
		br.out_len -= (size_t)n;
	}
}

/* Cycle timer: hand UART0 the next byte, then come back a character later. */
static avr_cycle_count_t feed_timer(struct avr_t *avr, avr_cycle_count_t when, void *param)
{
	(void)avr; (void)param;
	if (br.in_pos >= br.in_len)
		return 0;
	avr_raise_irq(br.uart_in, br.in[br.in_pos++]);
	return when + br.cycles_per_char;
}

/* Read what the client wrote once the previous batch is fed, and keep the
 * feed timer running while there is input (an MCU reset cancels every
 * cycle timer, so this is checked on every I/O pass). */
static void pump_in(int readable)
{
	if (readable && br.in_pos >= br.in_len) {
		ssize_t n = read(br.master, br.in, sizeof br.in);
		if (n > 0) {
			br.in_pos = 0;
			br.in_len = (size_t)n;
		}
	}
	if (br.in_pos < br.in_len && avr_cycle_timer_status(br.avr, feed_timer, NULL) == 0)
		avr_cycle_timer_register(br.avr, 1, feed_timer, NULL);
}

int main(int argc, char **argv)
{
	const char *mcu = "atmega328p";
	uint32_t freq = 16000000;
	int pace = 1, exit_on_eof = 0, opt;

	while ((opt = getopt(argc, argv, "m:f:nev")) != -1) {
		switch (opt) {
		case 'm': mcu = optarg; break;
		case 'f': freq = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'n': pace = 0; break;
		case 'e': exit_on_eof = 1; break;
		case 'v': br.verbose = 1; break;
		default: usage(); return 1;
		}
	}
	if (optind != argc - 1 || freq == 0) {
		usage();
		return 1;
	}
	const char *path = argv[optind];

	/* stdout carries only the pty line; simavr prints on stdout, so point
	 * that at stderr and keep the real stdout aside. */
	int report_fd = dup(STDOUT_FILENO);
	dup2(STDERR_FILENO, STDOUT_FILENO);

	static elf_firmware_t fw; /* large; keep it off the stack */
	if (elf_read_firmware(path, &fw) != 0) {
		fprintf(stderr, "simavr-uart: cannot read ELF %s\n", path);
		return 1;
	}
	if (fw.mmcu[0])
		mcu = fw.mmcu;
	avr_t *avr = avr_make_mcu_by_name(mcu);
	if (!avr) {
		fprintf(stderr, "simavr-uart: unknown MCU %s\n", mcu);
		return 1;
	}
	avr_init(avr);
	avr_load_firmware(avr, &fw);
	if (fw.frequency == 0)
		avr->frequency = freq;
	br.avr = avr;
	br.cycles_per_char = (avr_cycle_count_t)avr->frequency * BITS_PER_CHAR / LINE_BAUD;

	/* Own the clock: pacing happens below, so simavr's sleep callback is a no-op. */
	avr->sleep = no_sleep;

	int slave;
	char slavename[256];
	if (openpty(&br.master, &slave, slavename, NULL, NULL) != 0) {
		perror("simavr-uart: openpty");
		return 1;
	}
	/* Raw mode on the pair, so nothing echoes firmware output back into it
	 * before a client opens the slave and sets its own mode. */
	struct termios tio;
	tcgetattr(br.master, &tio);
	cfmakeraw(&tio);
	tcsetattr(br.master, TCSANOW, &tio);
	/* Keep our own slave fd open for the whole run: then the master never
	 * reports a hangup between clients, and reads just return EAGAIN. */
	(void)slave;
	fcntl(br.master, F_SETFL, fcntl(br.master, F_GETFL) | O_NONBLOCK);

	/* UART0 wiring: no stdio dump, no polling usleep (it would slow time). */
	uint32_t flags = 0;
	avr_ioctl(avr, AVR_IOCTL_UART_GET_FLAGS('0'), &flags);
	flags &= ~(uint32_t)(AVR_UART_FLAG_STDIO | AVR_UART_FLAG_POLL_SLEEP);
	avr_ioctl(avr, AVR_IOCTL_UART_SET_FLAGS('0'), &flags);
	avr_irq_t *u_out = avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUTPUT);
	avr_irq_t *u_in = avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_INPUT);
	if (!u_out || !u_in) {
		fprintf(stderr, "simavr-uart: %s has no UART0\n", mcu);
		return 1;
	}
	avr_irq_register_notify(u_out, uart_out_hook, NULL);
	br.uart_in = u_in;

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_reset;
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	dprintf(report_fd, "pty: %s\n", slavename);
	close(report_fd);
	if (br.verbose)
		fprintf(stderr, "simavr-uart: %s at %u Hz, %s, pacing %s\n", mcu,
				(unsigned)avr->frequency, path, pace ? "on" : "off");

	struct pollfd pfd[2] = {
		{ .fd = br.master, .events = POLLIN },
		{ .fd = exit_on_eof ? STDIN_FILENO : -1, .events = POLLIN },
	};
	const avr_cycle_count_t io_cycles =
			(avr_cycle_count_t)((uint64_t)avr->frequency * IO_PERIOD_NS / 1000000000ull);
	avr_cycle_count_t next_io = 0, base_cycle = avr->cycle;
	uint64_t base_ns = mono_ns(), start_ns = base_ns;
	unsigned long last_dropped = 0;
	int rc = 0;
	uint16_t last_pc = 0;

	while (!stop_signal) {
		if (reset_signal) {
			reset_signal = 0;
			avr_reset(avr);
			avr_regbit_set(avr, avr->reset_flags.extrf);
			if (br.verbose)
				fprintf(stderr, "simavr-uart: external reset (SIGUSR1)\n");
		}
		int state = avr_run(avr);
		if (state == cpu_Done)
			break;
		if (state == cpu_Crashed) {
			fprintf(stderr, "simavr-uart: firmware crashed at pc=0x%04x\n", (unsigned)avr->pc);
			rc = 2;
			break;
		}
		if (avr->pc == 0 && last_pc != 0 && br.verbose)
			fprintf(stderr, "simavr-uart: reset at %.3f s (simulated)\n",
					(double)cycles_to_ns(avr, avr->cycle) / 1e9);
		last_pc = (uint16_t)avr->pc;

		if (avr->cycle < next_io)
			continue;
		next_io = avr->cycle + io_cycles;

		flush_out();
		if (br.verbose && br.out_dropped != last_dropped) {
			fprintf(stderr, "simavr-uart: %lu output bytes dropped (no reader)\n",
					br.out_dropped - last_dropped);
			last_dropped = br.out_dropped;
		}

		/* Wait while simulated time is ahead of the wall clock; a byte from
		 * the client (or EOF on stdin) ends the wait early. */
		int64_t ahead = 0;
		if (pace) {
			int64_t sim = (int64_t)cycles_to_ns(avr, avr->cycle - base_cycle);
			int64_t real = (int64_t)(mono_ns() - base_ns);
			ahead = sim - real;
			if (ahead < -BEHIND_NS) {
				if (br.verbose)
					fprintf(stderr, "simavr-uart: %lld ms behind the wall clock, re-basing\n",
							(long long)(-ahead / 1000000));
				base_cycle = avr->cycle;
				base_ns = mono_ns();
				ahead = 0;
			}
		}
		struct timespec wait = { 0, 0 };
		if (ahead > AHEAD_NS) {
			wait.tv_sec = ahead / 1000000000ll;
			wait.tv_nsec = ahead % 1000000000ll;
		}
		/* While our input batch is unfed, don't poll the pty for more. */
		pfd[0].fd = br.in_pos < br.in_len ? -1 : br.master;
		int n = ppoll(pfd, 2, &wait, NULL);
		if (n < 0 && errno != EINTR) {
			perror("simavr-uart: ppoll");
			rc = 1;
			break;
		}
		if (n > 0 && pfd[1].fd >= 0 && (pfd[1].revents & (POLLIN | POLLHUP))) {
			char tmp[64];
			ssize_t r = read(STDIN_FILENO, tmp, sizeof tmp);
			if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN))
				break; /* parent gone */
		}
		pump_in(pfd[0].fd >= 0 && (pfd[0].revents & POLLIN));
	}

	flush_out();
	if (br.verbose) {
		struct timespec cpu;
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
		fprintf(stderr, "simavr-uart: %.3f s simulated in %.3f s, %.3f s CPU\n",
				(double)cycles_to_ns(avr, avr->cycle) / 1e9,
				(double)(mono_ns() - start_ns) / 1e9,
				(double)cpu.tv_sec + (double)cpu.tv_nsec / 1e9);
	}
	close(br.master);
	avr_terminate(avr);
	return rc;
}
