package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/teleop/teleop/devices"
	"github.com/teleop/teleop/devices/proto"
)

type serialConfig struct {
	port string
	baud int
	raw  bool
	wait time.Duration
}

// newSerialCmd builds `teleop serial`: a line console to a device.
func newSerialCmd() *cobra.Command {
	var c serialConfig
	cmd := &cobra.Command{
		Use:   "serial --port PORT",
		Short: "Line console to a device: type commands, see replies, telemetry and events",
		Long: `Open a serial port (115200 8N1 unless --baud) and talk firmware-protocol.md by hand.
Every line the device sends is printed with a timestamp; so is every line sent.

What you type (teleop/1, the default):
  PING                     sent as "<seq> PING*HH": the next seq and the checksum are added
  7 VEL 0.2 0              starts with a number: your seq is kept, the checksum is added
  7 VEL 0.2 0*00           contains '*': sent exactly as typed (to try a bad checksum)
  !                        alone: the e-stop byte, three times (!!!), bypassing any line
  ?                        alone: the telemetry byte (one TLM now)
The console sends the RESYNC byte (0x18) when it starts, so seqs from 1 are fresh to the
device. It does not handshake or apply settings: the device stays as it boots (strict=0).
'!' and '?' inside a line are refused, since the device would act on them mid-line.

With --raw, lines go out as typed (firmware that knows nothing of teleop): no seq,
no checksum, no reserved bytes, no RESYNC.

Each command waits for the reply to the previous one (at most --wait), so a pasted
block does not overflow the device's 64-byte receive buffer; '!' and '?' go out at
once. At end of input the console waits up to --wait for the last reply (raw: for
--wait), then exits; Ctrl-C exits at once. The port is locked while the console
runs, so an agent cannot open it meanwhile.`,
		Example: `  teleop serial --port /dev/ttyACM0
  teleop serial --port usb:2341:0043
  printf 'PING\nGET wdog_ms\n' | teleop serial --port /tmp/teleop-robot
  teleop serial --port /dev/ttyUSB0 --baud 9600 --raw`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSerial(cmd.Context(), cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr(), &c)
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.port, "port", "", "device node, /dev/serial/by-id link, or usb:VID:PID[:serial] (required)")
	f.IntVar(&c.baud, "baud", devices.DefaultBaud, "baud rate (8N1)")
	f.BoolVar(&c.raw, "raw", false, "send lines exactly as typed (no seq, checksum or reserved bytes)")
	f.DurationVar(&c.wait, "wait", time.Second, "how long to wait for a reply before the next line, and at end of input")
	cmd.MarkFlagRequired("port")
	return cmd
}

func runSerial(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, c *serialConfig) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // lets the stdin goroutine go at its next line
	sel, err := devices.ParseSelector(c.port)
	if err != nil {
		return fmt.Errorf("--port: %w", err)
	}
	path, err := devices.Resolve(sel)
	if err != nil {
		return err
	}
	port, err := devices.OpenPort(path, &devices.PortOptions{Baud: c.baud})
	if err != nil {
		return err
	}
	defer port.Close()
	mode := "teleop/1"
	if c.raw {
		mode = "raw"
	}
	fmt.Fprintf(stderr, "teleop serial: %s at %d baud 8N1, %s; Ctrl-D or Ctrl-C to quit\n", path, c.baud, mode)

	con := &console{out: stdout, raw: c.raw, wait: c.wait, idle: make(chan struct{}, 1)}
	if !c.raw {
		if _, err := port.Write([]byte{proto.ByteResync}); err != nil {
			return err
		}
	}

	// The device reader: one goroutine, ended by closing the port.
	readErr := make(chan error, 1)
	go func() { readErr <- con.readLoop(port) }()
	defer func() {
		port.Close()
		<-readErr
	}()

	// stdin: a goroutine, since a terminal read cannot be interrupted. It
	// ends at EOF; on Ctrl-C the process exits with it still blocked.
	lines := make(chan string)
	inErr := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
		inErr <- sc.Err()
		close(lines)
	}()

	// Commands wait for the reply to the one before (send-response, so a
	// pasted block does not overflow a 64-byte receive buffer); '!' and
	// '?' go out at once, overtaking them, as they do on the device.
	var queue []string
	var timeout <-chan time.Time
	for {
		for len(queue) > 0 && !con.waiting() {
			if err := con.send(port, queue[0], stderr); err != nil {
				return err
			}
			queue = queue[1:]
		}
		if timeout == nil && con.waiting() {
			timeout = time.After(c.wait)
		}
		if lines == nil && len(queue) == 0 {
			return con.drain(ctx, timeout, readErr)
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-readErr:
			readErr <- err // for the deferred wait
			return fmt.Errorf("device gone: %w", err)
		case <-con.idle:
			timeout = nil
		case <-timeout:
			timeout = nil
			fmt.Fprintf(stderr, "no reply within %v; going on\n", c.wait)
			con.forget()
		case line, ok := <-lines:
			switch {
			case !ok:
				if err := <-inErr; err != nil {
					return fmt.Errorf("read input: %w", err)
				}
				lines = nil
			case c.raw || !isRealtime(line):
				queue = append(queue, line)
			default:
				if err := con.send(port, line, stderr); err != nil {
					return err
				}
			}
		}
	}
}

func isRealtime(line string) bool {
	l := strings.TrimSpace(line)
	return l == "!" || l == "?"
}

// console formats what goes to the device and prints what comes back.
type console struct {
	raw  bool
	wait time.Duration

	mu      sync.Mutex
	out     io.Writer // guarded by mu: written by the reader and the main loop
	seq     uint16    // guarded by mu: the last seq sent
	pending []uint16  // guarded by mu: seqs sent, awaiting OK/ERR, oldest first
	idle    chan struct{}
}

// send encodes line and writes it; a line that cannot be sent is reported
// and skipped.
func (c *console) send(p *devices.Port, line string, stderr io.Writer) error {
	b, err := c.encode(line)
	if err != nil {
		fmt.Fprintf(stderr, "not sent: %v\n", err)
		return nil
	}
	if b == nil {
		return nil
	}
	_, err = p.Write(b)
	return err
}

// waiting reports whether a reply is outstanding.
func (c *console) waiting() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending) > 0
}

// forget gives up on the outstanding replies.
func (c *console) forget() {
	c.mu.Lock()
	c.pending = nil
	c.mu.Unlock()
}

// encode turns a typed line into the bytes to send (nil: nothing to send)
// and prints it.
func (c *console) encode(line string) ([]byte, error) {
	line = strings.TrimRight(line, " \t\r")
	if line == "" {
		return nil, nil
	}
	for i := 0; i < len(line); i++ {
		if b := line[i]; b < 0x20 || b >= 0x7F {
			return nil, fmt.Errorf("byte 0x%02x at %d is not printable ASCII", b, i)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.raw {
		c.printLocked("→", line)
		return []byte(line + "\n"), nil
	}
	switch line {
	case "!":
		c.printLocked("→", "!!! (e-stop)")
		return []byte{proto.ByteEstop, proto.ByteEstop, proto.ByteEstop}, nil
	case "?":
		c.printLocked("→", "? (telemetry)")
		return []byte{proto.ByteTelemetry}, nil
	}
	if i := strings.IndexAny(line, "!?"); i >= 0 {
		return nil, fmt.Errorf("%q at %d is a reserved byte: type it alone on a line", line[i], i)
	}
	first, _, _ := strings.Cut(line, " ")
	if n, err := strconv.ParseUint(first, 10, 16); err == nil && n > 0 {
		c.seq = uint16(n) // the user's seq
	} else {
		c.seq = proto.NextSeq(c.seq)
		line = strconv.Itoa(int(c.seq)) + " " + line
	}
	b := []byte(line)
	if strings.Contains(line, "*") {
		b = append(b, '\n') // sent as typed
	} else {
		b = proto.AppendChecksum(b, 0)
	}
	c.pending = append(c.pending, c.seq)
	c.printLocked("→", strings.TrimSuffix(string(b), "\n"))
	return b, nil
}

// readLoop prints device lines until the port ends; ErrPortClosed (our own
// Close) returns nil.
func (c *console) readLoop(p *devices.Port) error {
	var dl proto.DeviceLine
	for {
		line, err := p.ReadLine()
		var tl *devices.LineTooLongError
		switch {
		case errors.As(err, &tl):
			c.print("←", fmt.Sprintf("(discarded a %d-byte line)", tl.Len))
			continue
		case errors.Is(err, devices.ErrPortClosed):
			return nil
		case err != nil:
			return err
		}
		text := string(line)
		c.mu.Lock()
		c.printLocked("←", text)
		if !c.raw && proto.ParseDeviceLine(line, &dl, false) == nil && (dl.Kind == proto.KindOK || dl.Kind == proto.KindErr) {
			c.answeredLocked(dl.Seq, dl.NoSeq)
		}
		c.mu.Unlock()
	}
}

// answeredLocked crosses a reply off the pending list; "ERR -" answers the
// oldest (replies come in order).
func (c *console) answeredLocked(seq uint16, noSeq bool) {
	for i, s := range c.pending {
		if noSeq || s == seq {
			c.pending = append(c.pending[:i], c.pending[i+1:]...)
			break
		}
	}
	if len(c.pending) == 0 {
		select {
		case c.idle <- struct{}{}:
		default:
		}
	}
}

// drain waits, at end of input, for the replies still outstanding (until
// timeout) or, in raw mode, for lines the device may still send (--wait).
func (c *console) drain(ctx context.Context, timeout <-chan time.Time, readErr chan error) error {
	if c.raw || timeout == nil {
		timeout = time.After(c.wait)
	}
	for c.waiting() || c.raw {
		select {
		case <-c.idle:
		case <-timeout:
			return nil
		case <-ctx.Done():
			return nil
		case err := <-readErr:
			readErr <- err
			return fmt.Errorf("device gone: %w", err)
		}
	}
	return nil
}

func (c *console) print(dir, text string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.printLocked(dir, text)
}

func (c *console) printLocked(dir, text string) {
	fmt.Fprintf(c.out, "%s %s %s\n", time.Now().Format("15:04:05.000"), dir, text)
}
