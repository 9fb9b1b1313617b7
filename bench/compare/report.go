package compare

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteText prints the result as one table: a block of rows per payload,
// one row per server, and each peer's ratio to teleop server after its
// number (×0.50: half of teleop server's).
func (r *Result) WriteText(w io.Writer) error {
	m := r.Machine
	fmt.Fprintf(w, "relay comparison over loopback (teleop server, mosquitto, nats-server), %v per run\n", r.Duration)
	fmt.Fprintf(w, "machine: %s, %d CPUs, GOMAXPROCS %d, %s %s/%s, load %s → %s\n",
		orUnknown(m.CPU), m.NumCPU, m.GOMAXPROCS, m.GoVersion, m.GOOS, m.GOARCH, orUnknown(m.LoadBefore), orUnknown(m.LoadAfter))
	fmt.Fprintf(w, "latency: 1→1 at %d/s, send → receive; throughput: one sender, delivered messages/s; memory: server RSS growth per idle connection (%d)\n\n",
		r.Rate, r.IdleConns)

	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	var fanouts []int
	if len(r.Servers) > 0 && len(r.Servers[0].Payloads) > 0 {
		for _, t := range r.Servers[0].Payloads[0].Throughput {
			fanouts = append(fanouts, t.Receivers)
		}
	}
	for pi := range firstPayloads(r) {
		head := []string{"payload " + sizeName(r.Servers[0].Payloads[pi].Bytes), "version", "p50", "p99", "p99.9"}
		for _, n := range fanouts {
			head = append(head, fmt.Sprintf("1→%d /s", n))
		}
		head = append(head, "idle RSS/conn")
		if pi > 0 {
			fmt.Fprintln(tw, strings.Repeat("\t", len(head)-1))
		}
		fmt.Fprintln(tw, strings.Join(head, "\t"))
		for _, s := range r.Servers {
			if pi >= len(s.Payloads) {
				continue
			}
			p := s.Payloads[pi]
			var rt Ratios
			if p.VsTeleop != nil {
				rt = *p.VsTeleop
			}
			peer := p.VsTeleop != nil
			row := []string{s.Name, s.Version}
			if l := p.Latency; l != nil {
				row = append(row, withRatio(dur(l.P50), rt.P50, peer), withRatio(dur(l.P99), rt.P99, peer), withRatio(dur(l.P999), rt.P999, peer))
			} else {
				row = append(row, "-", "-", "-")
			}
			for ti := range fanouts {
				if ti < len(p.Throughput) {
					ratio, ok := 0.0, peer && ti < len(rt.DeliveredPerS)
					if ok {
						ratio = rt.DeliveredPerS[ti]
					}
					row = append(row, withRatio(Thousands(p.Throughput[ti].DeliveredPerS), ratio, ok))
				} else {
					row = append(row, "-")
				}
			}
			if s.Memory != nil {
				ratio := 0.0
				if s.VsTeleop != nil {
					ratio = s.VsTeleop.BytesPerConn
				}
				row = append(row, withRatio(fmt.Sprintf("%.1f KB", s.Memory.BytesPerConn/1024), ratio, s.VsTeleop != nil))
			} else {
				row = append(row, "-")
			}
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, line := range strings.Split(strings.TrimSuffix(table.String(), "\n"), "\n") {
		fmt.Fprintln(w, strings.TrimRight(line, " ")) // the padding of the blank line between blocks
	}
	fmt.Fprintf(w, "\n×: the peer's number ÷ teleop server's (latency, memory: below 1 the peer does better; throughput: above 1)\n")
	fmt.Fprintf(w, "idle connections carry no payload: one memory run per server, shown in every block\n")
	for _, s := range r.Servers {
		fmt.Fprintf(w, "client for %s: %s\n", s.Name, s.Client)
	}
	if r.Chart != "" {
		fmt.Fprintf(w, "chart: %s\n", r.Chart)
	}
	return nil
}

// firstPayloads ranges over the payload blocks of the reference server.
func firstPayloads(r *Result) []PayloadRuns {
	if len(r.Servers) == 0 {
		return nil
	}
	return r.Servers[0].Payloads
}

func withRatio(v string, ratio float64, show bool) string {
	if !show {
		return v
	}
	return fmt.Sprintf("%s ×%.2f", v, ratio)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func sizeName(n int) string {
	if n >= 1024 && n%1024 == 0 {
		return strconv.Itoa(n/1024) + " KB"
	}
	return strconv.Itoa(n) + " B"
}

func dur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
}

// Thousands formats v rounded, with commas: 1234567 → "1,234,567".
func Thousands(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
