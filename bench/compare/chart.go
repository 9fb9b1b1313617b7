package compare

import (
	"errors"
	"fmt"
	"image/color"
	"math"
	"os"
	"strconv"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// serverColors are the chart's line colours, by Kind (Okabe–Ito: readable
// by colour-blind people).
var serverColors = [...]color.RGBA{
	Teleop:    {0x00, 0x72, 0xB2, 0xff}, // blue
	Mosquitto: {0xE6, 0x9F, 0x00, 0xff}, // orange
	NATS:      {0x00, 0x9E, 0x73, 0xff}, // green
}

// WriteChart draws the latency distributions as a PNG at path: one panel
// per payload, one line per server, latency (log scale) by percentile on a
// scale that spreads the tail (50, 90, 99, 99.9 % equally apart).
func (r *Result) WriteChart(path string) error {
	blocks := firstPayloads(r)
	if len(blocks) == 0 {
		return errors.New("chart: no results")
	}
	var row []*plot.Plot
	lo, hi := math.Inf(1), 0.0
	for pi, b := range blocks {
		p := plot.New()
		p.Title.Text = fmt.Sprintf("1→1 latency at %d/s, payload %s", r.Rate, sizeName(b.Bytes))
		p.X.Label.Text = "percentile"
		p.Y.Label.Text = "latency, send → receive"
		p.Y.Scale = plot.LogScale{}
		p.Add(plotter.NewGrid())
		p.Legend.Top = true // the lines rise to the right: the top left is free
		p.Legend.Left = true
		p.Legend.XOffs, p.Legend.YOffs = vg.Points(6), -vg.Points(4)
		maxX := 0.0
		for _, s := range r.Servers {
			if pi >= len(s.Payloads) || s.Payloads[pi].Latency == nil || len(s.Payloads[pi].Latency.sorted) == 0 {
				continue
			}
			l := s.Payloads[pi].Latency
			pts := percentilePoints(l.sorted)
			for _, pt := range pts {
				lo, hi = min(lo, pt.Y), max(hi, pt.Y)
				maxX = max(maxX, pt.X)
			}
			line, err := plotter.NewLine(pts)
			if err != nil {
				return fmt.Errorf("chart: %w", err)
			}
			line.Color = serverColors[s.Kind]
			line.Width = vg.Points(1.5)
			p.Add(line)
			p.Legend.Add(fmt.Sprintf("%s (p50 %s, p99 %s)", s.Name, dur(l.P50), dur(l.P99)), line)
		}
		p.X.Min, p.X.Max = 0, maxX
		p.X.Tick.Marker = percentileTicks{}
		row = append(row, p)
	}
	if hi == 0 {
		return errors.New("chart: no latency samples")
	}
	for _, p := range row { // one latency scale for all panels
		p.Y.Min, p.Y.Max = lo/1.2, hi*4 // headroom for the legend
		p.Y.Tick.Marker = latencyTicks{}
	}

	const dpi = 110
	w, h := vg.Length(6*len(row))*vg.Inch, 4.5*vg.Inch
	img := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(dpi), vgimg.UseBackgroundColor(color.White))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: len(row), PadX: vg.Inch / 3, PadTop: vg.Inch / 8, PadBottom: vg.Inch / 8,
		PadLeft: vg.Inch / 8, PadRight: vg.Inch / 4}
	canvases := plot.Align([][]*plot.Plot{row}, tiles, dc)
	for i, p := range row {
		p.Draw(canvases[0][i])
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("chart: write %s: %w", path, err)
	}
	return f.Close()
}

// percentilePoints maps sorted samples to (x, latency in µs) with
// x = -log10(1 - q) for quantile q, about 400 points spread evenly in x.
func percentilePoints(sorted []time.Duration) plotter.XYs {
	n := len(sorted)
	maxX := math.Log10(float64(n))
	var pts plotter.XYs
	last := -1
	for x := 0.0; x <= maxX; x += maxX / 400 {
		q := 1 - math.Pow(10, -x)
		i := min(n-1, int(q*float64(n)))
		if i == last {
			continue
		}
		last = i
		pts = append(pts, plotter.XY{X: x, Y: float64(sorted[i]) / float64(time.Microsecond)})
	}
	if last != n-1 {
		pts = append(pts, plotter.XY{X: maxX, Y: float64(sorted[n-1]) / float64(time.Microsecond)})
	}
	return pts
}

// percentileTicks label x = -log10(1 - q) as percentiles.
type percentileTicks struct{}

func (percentileTicks) Ticks(_, max float64) []plot.Tick {
	ticks := []plot.Tick{{Value: 0, Label: "0"}, {Value: math.Log10(2), Label: "50"}}
	labels := []string{"90", "99", "99.9", "99.99", "99.999"}
	for i, l := range labels {
		v := float64(i + 1)
		if v > max+0.01 {
			break
		}
		ticks = append(ticks, plot.Tick{Value: v, Label: l})
	}
	return ticks
}

// latencyTicks label a log axis in µs at 1, 2 and 5 of each decade.
type latencyTicks struct{}

func (latencyTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for dec := math.Pow10(int(math.Floor(math.Log10(lo)))); dec <= hi; dec *= 10 {
		for _, m := range []float64{1, 2, 3, 4, 5, 6, 7, 8, 9} {
			v := dec * m
			if v < lo || v > hi {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 || m == 2 || m == 5 {
				t.Label = strconv.FormatFloat(v, 'g', -1, 64) + "µs"
				if v >= 1000 {
					t.Label = strconv.FormatFloat(v/1000, 'g', -1, 64) + "ms"
				}
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}
