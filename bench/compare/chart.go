package compare

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"strconv"
	"time"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
	"golang.org/x/image/vector"
)

// The chart is drawn with golang.org/x/image (a rasterizer and the Go
// font), not a plotting library: gonum/plot with its fonts, LaTeX and PDF
// back ends added 8 MB to the one teleop binary and 3 MB to the RSS of
// every teleop process, the agent on a Pi included.

// serverColors are the chart's line colours, by Kind (Okabe–Ito: readable
// by colour-blind people).
var serverColors = [...]color.RGBA{
	Teleop:    {0x00, 0x72, 0xB2, 0xff}, // blue
	Mosquitto: {0xE6, 0x9F, 0x00, 0xff}, // orange
	NATS:      {0x00, 0x9E, 0x73, 0xff}, // green
}

var (
	gridColor = color.RGBA{0xdd, 0xdd, 0xdd, 0xff}
	axisColor = color.RGBA{0x44, 0x44, 0x44, 0xff}
	textColor = color.RGBA{0x22, 0x22, 0x22, 0xff}
)

const (
	panelW, panelH = 660, 480
	marginL        = 70 // tick labels
	marginR        = 24
	marginT        = 44 // title
	marginB        = 52 // tick labels and axis name
)

// WriteChart draws the latency distributions as a PNG at path: one panel
// per payload, one line per server, latency (log scale) by percentile on a
// scale that spreads the tail (50, 90, 99, 99.9 % equally apart).
func (r *Result) WriteChart(path string) error {
	blocks := firstPayloads(r)
	if len(blocks) == 0 {
		return errors.New("chart: no results")
	}
	lo, hi := math.Inf(1), 0.0
	for _, s := range r.Servers {
		for _, p := range s.Payloads {
			if p.Latency != nil && len(p.Latency.sorted) > 0 {
				lo = min(lo, us(p.Latency.sorted[0]))
				hi = max(hi, us(p.Latency.sorted[len(p.Latency.sorted)-1]))
			}
		}
	}
	if hi == 0 {
		return errors.New("chart: no latency samples")
	}
	lo = max(lo, 1) / 1.2
	hi *= 4 // headroom for the legend
	text, err := newFaces()
	if err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	img := image.NewRGBA(image.Rect(0, 0, panelW*len(blocks), panelH))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	for pi, b := range blocks {
		origin := image.Pt(pi*panelW, 0)
		p := &panel{img: img, text: text,
			area: image.Rect(origin.X+marginL, marginT, origin.X+panelW-marginR, panelH-marginB),
			y0:   math.Log10(lo), y1: math.Log10(hi)}
		type line struct {
			pts   []point
			color color.RGBA
			label string
		}
		var lines []line
		for _, s := range r.Servers {
			if pi >= len(s.Payloads) || s.Payloads[pi].Latency == nil || len(s.Payloads[pi].Latency.sorted) == 0 {
				continue
			}
			l := s.Payloads[pi].Latency
			pts := percentilePoints(l.sorted)
			p.x1 = max(p.x1, pts[len(pts)-1].x)
			lines = append(lines, line{pts, serverColors[s.Kind], fmt.Sprintf("%s (p50 %s, p99 %s)", s.Name, dur(l.P50), dur(l.P99))})
		}
		if p.x1 == 0 {
			p.x1 = 1
		}
		p.title(origin, fmt.Sprintf("1→1 latency at %d/s, payload %s", r.Rate, sizeName(b.Bytes)))
		p.axes()
		for _, l := range lines {
			p.polyline(l.pts, l.color)
		}
		for i, l := range lines {
			p.legend(i, l.color, l.label)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return fmt.Errorf("chart: write %s: %w", path, err)
	}
	return f.Close()
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// point is a sample in data space: x = -log10(1 - q) for quantile q,
// y = latency in µs.
type point struct{ x, y float64 }

// percentilePoints maps sorted samples to points, about 400 spread evenly
// in x, and the maximum.
func percentilePoints(sorted []time.Duration) []point {
	n := len(sorted)
	maxX := math.Log10(float64(n))
	var pts []point
	last := -1
	for x := 0.0; x <= maxX; x += maxX / 400 {
		q := 1 - math.Pow(10, -x)
		i := min(n-1, int(q*float64(n)))
		if i == last {
			continue
		}
		last = i
		pts = append(pts, point{x, us(sorted[i])})
		if maxX == 0 {
			break
		}
	}
	if last != n-1 {
		pts = append(pts, point{maxX, us(sorted[n-1])})
	}
	return pts
}

// faces are the chart's fonts: the Go font, which has µ, → and ×.
type faces struct{ title, label font.Face }

func newFaces() (*faces, error) {
	f, err := opentype.Parse(goregular.TTF)
	if err != nil {
		return nil, err
	}
	face := func(size float64) (font.Face, error) {
		return opentype.NewFace(f, &opentype.FaceOptions{Size: size, DPI: 72, Hinting: font.HintingFull})
	}
	t, err := face(17)
	if err != nil {
		return nil, err
	}
	l, err := face(13)
	if err != nil {
		return nil, err
	}
	return &faces{title: t, label: l}, nil
}

// panel is one payload's plot: its area in pixels and its data ranges
// (x in percentile space, y in log10 µs).
type panel struct {
	img    *image.RGBA
	text   *faces
	area   image.Rectangle
	x1     float64 // x0 is 0
	y0, y1 float64
}

func (p *panel) px(x float64) float32 {
	return float32(p.area.Min.X) + float32(x/p.x1)*float32(p.area.Dx())
}

func (p *panel) py(us float64) float32 {
	return float32(p.area.Max.Y) - float32((math.Log10(us)-p.y0)/(p.y1-p.y0))*float32(p.area.Dy())
}

func (p *panel) title(origin image.Point, s string) {
	w := font.MeasureString(p.text.title, s).Ceil()
	p.write(p.text.title, origin.X+(panelW-w)/2, 28, s)
}

// axes draws the grid, the ticks and their labels, and the axes' names.
func (p *panel) axes() {
	a := p.area
	for _, t := range percentileTicks(p.x1) {
		x := int(p.px(t.v) + 0.5)
		p.rect(image.Rect(x, a.Min.Y, x+1, a.Max.Y), gridColor)
		p.rect(image.Rect(x, a.Max.Y, x+1, a.Max.Y+5), axisColor)
		w := font.MeasureString(p.text.label, t.label).Ceil()
		p.write(p.text.label, x-w/2, a.Max.Y+19, t.label)
	}
	name := "percentile"
	p.write(p.text.label, a.Min.X+(a.Dx()-font.MeasureString(p.text.label, name).Ceil())/2, a.Max.Y+40, name)
	for _, t := range latencyTicks(math.Pow(10, p.y0), math.Pow(10, p.y1)) {
		y := int(p.py(t.v) + 0.5)
		if t.label == "" {
			p.rect(image.Rect(a.Min.X-3, y, a.Min.X, y+1), axisColor)
			continue
		}
		p.rect(image.Rect(a.Min.X, y, a.Max.X, y+1), gridColor)
		p.rect(image.Rect(a.Min.X-6, y, a.Min.X, y+1), axisColor)
		w := font.MeasureString(p.text.label, t.label).Ceil()
		p.write(p.text.label, a.Min.X-9-w, y+5, t.label)
	}
	p.write(p.text.label, a.Min.X-marginL+6, a.Min.Y-6, "latency (send → receive)")
	p.rect(image.Rect(a.Min.X, a.Min.Y, a.Min.X+1, a.Max.Y+1), axisColor)
	p.rect(image.Rect(a.Min.X, a.Max.Y, a.Max.X, a.Max.Y+1), axisColor)
}

// polyline strokes pts, 2 px wide and antialiased, clipped to the area.
func (p *panel) polyline(pts []point, c color.RGBA) {
	const halfWidth = 1.1
	clip := p.area.Inset(-1)
	ox, oy := float32(clip.Min.X), float32(clip.Min.Y) // the mask's origin
	z := vector.NewRasterizer(clip.Dx(), clip.Dy())
	for i := 1; i < len(pts); i++ {
		ax, ay := p.px(pts[i-1].x)-ox, p.py(pts[i-1].y)-oy
		bx, by := p.px(pts[i].x)-ox, p.py(pts[i].y)-oy
		dx, dy := bx-ax, by-ay
		l := float32(math.Hypot(float64(dx), float64(dy)))
		if l == 0 {
			continue
		}
		// Every segment is a quad wound the same way, so overlaps add up
		// (and saturate) instead of cancelling.
		nx, ny := -dy/l*halfWidth, dx/l*halfWidth
		z.MoveTo(ax+nx, ay+ny)
		z.LineTo(bx+nx, by+ny)
		z.LineTo(bx-nx, by-ny)
		z.LineTo(ax-nx, ay-ny)
		z.ClosePath()
	}
	z.Draw(p.img, clip, image.NewUniform(c), image.Point{})
}

// legend writes entry i at the top left of the area, on white.
func (p *panel) legend(i int, c color.RGBA, label string) {
	x, y := p.area.Min.X+12, p.area.Min.Y+10+i*18
	w := font.MeasureString(p.text.label, label).Ceil()
	p.rect(image.Rect(x-4, y-2, x+34+w, y+17), color.RGBA{0xff, 0xff, 0xff, 0xff})
	p.rect(image.Rect(x, y+7, x+24, y+10), c)
	p.write(p.text.label, x+30, y+12, label)
}

func (p *panel) rect(r image.Rectangle, c color.RGBA) {
	draw.Draw(p.img, r, image.NewUniform(c), image.Point{}, draw.Src)
}

func (p *panel) write(face font.Face, x, y int, s string) {
	d := font.Drawer{Dst: p.img, Src: image.NewUniform(textColor), Face: face, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

type tick struct {
	v     float64
	label string
}

// percentileTicks label x = -log10(1 - q) as percentiles, up to max.
func percentileTicks(max float64) []tick {
	ticks := []tick{{0, "0"}, {math.Log10(2), "50"}}
	for i, l := range []string{"90", "99", "99.9", "99.99", "99.999"} {
		v := float64(i + 1)
		if v > max+0.01 {
			break
		}
		ticks = append(ticks, tick{v, l})
	}
	return ticks
}

// latencyTicks mark a log axis of µs from lo to hi: a label at 1, 2 and 5
// of each decade, a bare tick at the other digits.
func latencyTicks(lo, hi float64) []tick {
	var ticks []tick
	for dec := math.Pow10(int(math.Floor(math.Log10(lo)))); dec <= hi; dec *= 10 {
		for m := 1.0; m <= 9; m++ {
			v := dec * m
			if v < lo || v > hi {
				continue
			}
			t := tick{v: v}
			if m == 1 || m == 2 || m == 5 {
				t.label = strconv.FormatFloat(v, 'g', -1, 64) + "µs"
				if v >= 1000 {
					t.label = strconv.FormatFloat(v/1000, 'g', -1, 64) + "ms"
				}
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}
