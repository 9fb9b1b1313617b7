package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/teleop/teleop/signaling"
	"github.com/teleop/teleop/signaling/relay"
	"github.com/teleop/teleop/signaling/token"
	"github.com/teleop/teleop/web"
)

const (
	apiKey    = "1234567"
	apiSecret = "console-test-secret-console-test-secret"
	// waitFor bounds every wait on the page or on a peer. Reconnecting
	// backs off to 5 s at most, so this leaves room.
	waitFor = 20 * time.Second
)

// chromium finds the Debian chromium, or another Chrome on PATH. Tests skip
// without one; they never download a browser.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("TELEOP_CHROMIUM"); p != "" {
		return p
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const msg = "no chromium: install Debian's chromium (apt-get install chromium) or set TELEOP_CHROMIUM to run the console's browser tests"
	if os.Getenv("TELEOP_REQUIRE_CHROMIUM") != "" {
		t.Fatal(msg + " (TELEOP_REQUIRE_CHROMIUM is set)")
	}
	t.Skip(msg)
	return ""
}

var (
	artifactsOnce sync.Once
	artifactsDir  string
)

// artifacts is where screenshots go: $TELEOP_WEB_ARTIFACTS, else a fresh
// temporary directory that outlives the test run.
func artifacts(t *testing.T) string {
	artifactsOnce.Do(func() {
		artifactsDir = os.Getenv("TELEOP_WEB_ARTIFACTS")
		if artifactsDir == "" {
			artifactsDir, _ = os.MkdirTemp("", "teleop-web-artifacts-")
		}
		_ = os.MkdirAll(artifactsDir, 0o755)
	})
	return artifactsDir
}

// harness is a relay with the console as its Fallback on httptest, a
// proxy in front of it that the browser goes through (so a test can cut
// the browser's sockets), and one session.
type harness struct {
	t       *testing.T
	srv     *httptest.Server
	proxy   *dropProxy
	session string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	rl, err := relay.New(&relay.Options{APIKey: apiKey, APISecret: apiSecret, Fallback: web.Handler(nil)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(rl)
	t.Cleanup(func() {
		rl.Close()
		srv.Close()
	})
	p := newDropProxy(t, srv.Listener.Addr().String())
	return &harness{t: t, srv: srv, proxy: p, session: "console-" + strings.ToLower(t.Name())}
}

// token mints a token for the harness's session.
func (h *harness) token(data string, role token.Role) string {
	h.t.Helper()
	tok, err := token.New(apiKey, apiSecret, h.session, &token.Options{Role: role, ConnectionData: data})
	if err != nil {
		h.t.Fatal(err)
	}
	return tok
}

// consoleURL is the page with its token in the fragment, through the proxy.
func (h *harness) consoleURL(tok string) string {
	return h.proxy.URL() + "/#token=" + tok
}

// peer is a Go client in the session (the robot, an observer, a
// moderator) that records every signal it receives.
type peer struct {
	t    *testing.T
	name string
	s    *signaling.Session

	mu   sync.Mutex
	got  []signaling.Signal      // guarded by mu
	subs []chan signaling.Signal // guarded by mu
	wake chan struct{}
}

func (h *harness) peer(name, data string, role token.Role) *peer {
	h.t.Helper()
	p := &peer{t: h.t, name: name, wake: make(chan struct{}, 1)}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	s := signaling.NewSession(nil)
	s.OnSignal(p.record)
	if err := s.Connect(ctx, h.srv.URL, h.token(data, role)); err != nil {
		h.t.Fatalf("%s: connect: %v", name, err)
	}
	p.s = s
	h.t.Cleanup(func() { s.Close() })
	return p
}

func (p *peer) record(sig signaling.Signal) {
	p.mu.Lock()
	p.got = append(p.got, sig)
	for _, c := range p.subs {
		select {
		case c <- sig:
		default:
			p.t.Errorf("%s: a subscriber fell 1024 signals behind", p.name)
		}
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *peer) id() string { return p.s.ID() }

// subscribe returns the signals the peer receives from now on, for a
// goroutine that answers them (as the agent would).
func (p *peer) subscribe() <-chan signaling.Signal {
	c := make(chan signaling.Signal, 1024)
	p.mu.Lock()
	p.subs = append(p.subs, c)
	p.mu.Unlock()
	return c
}

// signals returns what the peer has received so far.
func (p *peer) signals() []signaling.Signal {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.got)
}

// waitUntil returns the received signals once ok holds for them, or fails
// the test after waitFor.
func (p *peer) waitUntil(what string, ok func([]signaling.Signal) bool) []signaling.Signal {
	p.t.Helper()
	deadline := time.NewTimer(waitFor)
	defer deadline.Stop()
	for {
		got := p.signals()
		if ok(got) {
			return got
		}
		select {
		case <-p.wake:
		case <-deadline.C:
			p.t.Fatalf("%s: timed out waiting for %s; received %s", p.name, what, summary(got))
		}
	}
}

// send signals from the peer, failing the test on error.
func (p *peer) send(typ, data, to string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := p.s.Signal(ctx, signaling.Signal{Type: typ, Data: data, To: to}); err != nil {
		p.t.Fatalf("%s: signal %s: %v", p.name, typ, err)
	}
}

// connectionNamed waits until the peer sees a connection whose data
// contains want, and returns its ID.
func (p *peer) connectionNamed(want string) string {
	p.t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		for _, c := range p.s.Connections() {
			if strings.Contains(c.Data, want) {
				return c.ConnectionID
			}
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: no connection with data %q", p.name, want)
		}
		select {
		case <-p.wake:
		case <-time.After(20 * time.Millisecond): // connection events have no hook here; re-read
		}
	}
}

func ofType(sigs []signaling.Signal, typ string) []signaling.Signal {
	var out []signaling.Signal
	for _, s := range sigs {
		if s.Type == typ {
			out = append(out, s)
		}
	}
	return out
}

func summary(sigs []signaling.Signal) string {
	if len(sigs) == 0 {
		return "nothing"
	}
	var b strings.Builder
	for i, s := range sigs {
		if i == 12 {
			fmt.Fprintf(&b, " … (%d in all)", len(sigs))
			break
		}
		fmt.Fprintf(&b, "\n  %s %s to=%q", s.Type, s.Data, s.To)
	}
	return b.String()
}

// driveData is the data of drive, stop, estop, clear and control.
type driveData struct {
	ID      int64    `json:"id"`
	Linear  *float64 `json:"linear"`
	Angular *float64 `json:"angular"`
	Action  string   `json:"action"`
}

func decode(t *testing.T, s signaling.Signal) driveData {
	t.Helper()
	var d driveData
	if err := json.Unmarshal([]byte(s.Data), &d); err != nil {
		t.Fatalf("%s data %q: %v", s.Type, s.Data, err)
	}
	return d
}

// browser starts headless chromium for one test and returns the context
// of its first tab.
func browser(t *testing.T) context.Context {
	t.Helper()
	exe := chromium(t)
	profile := t.TempDir()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(profile),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancel()
		cancelAlloc() // waits for the browser to exit, before TempDir removes its profile
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", exe, err)
	}
	return ctx
}

// page is one tab of the console.
type page struct {
	t    *testing.T
	ctx  context.Context
	name string

	mu        sync.Mutex
	errors    []string // guarded by mu: uncaught exceptions and CSP refusals
	expectCSP bool     // guarded by mu: CSP refusals go to refused, not errors
	refused   []string // guarded by mu
}

type viewport struct {
	w, h   int64
	mobile bool
}

var (
	desktop = viewport{1280, 800, false}
	phone   = viewport{390, 844, true}
)

// open opens url in a new tab of the browser at the viewport's size, and
// records the page's errors, which fail the test when it ends.
func open(t *testing.T, bctx context.Context, name, url string, vp viewport) *page {
	t.Helper()
	ctx, cancel := chromedp.NewContext(bctx) // a new tab
	p := &page{t: t, ctx: ctx, name: name}
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	console := chromedp.Events(ctx, runtime.ConsoleAPICalled)
	entries := chromedp.Events(ctx, log.EntryAdded)
	if _, err := chromedp.Call(ctx, log.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("log.enable: %v", err)
	}
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			p.fail("uncaught: " + exceptionText(ev))
		}
	}()
	go func() {
		defer wg.Done()
		for ev, err := range console {
			if err != nil {
				return
			}
			var parts []string
			for _, a := range ev.Args {
				if a.Value != nil {
					parts = append(parts, string(a.Value))
				} else {
					parts = append(parts, a.Description)
				}
			}
			t.Logf("%s console.%s: %s", name, ev.Type, strings.Join(parts, " "))
		}
	}()
	go func() {
		defer wg.Done()
		for ev, err := range entries {
			if err != nil {
				return
			}
			e := ev.Entry
			t.Logf("%s log %s/%s: %s", name, e.Source, e.Level, e.Text)
			if e.Source == log.EntrySourceSecurity || strings.Contains(e.Text, "Content Security Policy") {
				p.mu.Lock()
				if p.expectCSP {
					p.refused = append(p.refused, e.Text)
				} else {
					p.errors = append(p.errors, "security: "+e.Text)
				}
				p.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait() // the streams end with the tab's context
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, e := range p.errors {
			t.Errorf("%s: page error: %s", name, e)
		}
	})
	opts := []chromedp.EmulateViewportOption{}
	if vp.mobile {
		opts = append(opts, chromedp.EmulateScale(3), chromedp.EmulateMobile)
	}
	p.do(chromedp.EmulateViewport(vp.w, vp.h, opts...), chromedp.Navigate(url))
	return p
}

func exceptionText(ev runtime.EventExceptionThrown) string {
	d := ev.ExceptionDetails
	s := d.Text
	if d.Exception != nil && d.Exception.Description != "" {
		s += " " + d.Exception.Description
	}
	return fmt.Sprintf("%s (%s:%d:%d)", s, d.URL, d.LineNumber, d.ColumnNumber)
}

func (p *page) fail(msg string) {
	p.mu.Lock()
	p.errors = append(p.errors, msg)
	p.mu.Unlock()
}

func (p *page) do(actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, actions...); err != nil {
		p.t.Fatalf("%s: %v\n%s", p.name, err, p.describe())
	}
}

// js evaluates an expression and decodes its value.
func js[T any](p *page, expr string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("%s: evaluate %s: %v", p.name, expr, err)
	}
	return v
}

// until polls a JavaScript condition on the page until it holds.
func (p *page) until(what, cond string) {
	p.t.Helper()
	_, err := chromedp.Run(p.ctx, chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(waitFor), chromedp.WithPollingInterval(25*time.Millisecond)))
	if err != nil {
		p.t.Fatalf("%s: waiting for %s (%s): %v\n%s", p.name, what, cond, err, p.describe())
	}
}

func (p *page) text(id string) string {
	p.t.Helper()
	return js[string](p, fmt.Sprintf(`document.getElementById(%q).textContent`, id))
}

// describe is what the operator would see, for failure messages.
func (p *page) describe() string {
	ctx, cancel := context.WithTimeout(p.ctx, 2*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`[
	  'state: ' + document.getElementById('conn-state').textContent + ' — ' + document.getElementById('conn-detail').textContent,
	  'error banner: ' + (document.getElementById('banner-error').hidden ? '(hidden)' : document.getElementById('banner-error').textContent),
	  'drive: ' + document.getElementById('drive-state').textContent,
	  'log:\n    ' + [...document.querySelectorAll('#log li')].slice(0, 12).map(li => li.textContent).join('\n    '),
	].join('\n  ')`))
	if err != nil {
		return "  (page unreadable: " + err.Error() + ")"
	}
	return "  " + s
}

// waitIdle waits in the page for d, by the page's own clock. It makes a
// window in which something must not happen; it orders nothing.
func (p *page) waitIdle(d time.Duration) {
	p.t.Helper()
	js[any](p, fmt.Sprintf(`new Promise(r => setTimeout(() => r(true), %d))`, d.Milliseconds()))
}

type key struct {
	code, key string
	vk        int64
}

var (
	keyW      = key{"KeyW", "w", 87}
	keyS      = key{"KeyS", "s", 83}
	keyA      = key{"KeyA", "a", 65}
	keyLeft   = key{"ArrowLeft", "ArrowLeft", 37}
	keyUp     = key{"ArrowUp", "ArrowUp", 38}
	keySpace  = key{"Space", " ", 32}
	keyEscape = key{"Escape", "Escape", 27}
	keyShift  = key{"ShiftLeft", "Shift", 16}
	key1      = key{"Digit1", "1", 49}
	key2      = key{"Digit2", "2", 50}
	key4      = key{"Digit4", "4", 52}
)

func keyEvent(k key, typ input.DispatchKeyEventType) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Call(ctx, input.DispatchKeyEvent, input.DispatchKeyEventParams{
			Type: typ, Code: k.code, Key: k.key, WindowsVirtualKeyCode: k.vk, NativeVirtualKeyCode: k.vk,
		})
		return err
	})
}

func (p *page) keyDown(k key) { p.t.Helper(); p.do(keyEvent(k, input.DispatchKeyEventTypeRawKeyDown)) }
func (p *page) keyUp(k key)   { p.t.Helper(); p.do(keyEvent(k, input.DispatchKeyEventTypeKeyUp)) }

// center returns the page coordinates of an element's centre.
func (p *page) center(sel string) (x, y float64) {
	p.t.Helper()
	r := js[[]float64](p, fmt.Sprintf(`(() => { const r = document.querySelector(%q).getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; })()`, sel))
	return r[0], r[1]
}

func (p *page) click(sel string) {
	p.t.Helper()
	p.do(chromedp.Click(chromedp.CSS(sel)))
}

// screenshot saves the viewport as a PNG under the artifacts directory.
func (p *page) screenshot(name string) string {
	p.t.Helper()
	buf, err := chromedp.Run(p.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(artifacts(p.t), name+".png")
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("screenshot: %s", path)
	return path
}

// dropProxy forwards TCP to the relay and can cut every connection through
// it and refuse new ones: a network drop as the browser sees it.
type dropProxy struct {
	t       *testing.T
	ln      net.Listener
	backend string

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // guarded by mu
	refuse bool                  // guarded by mu
	wg     sync.WaitGroup
}

func newDropProxy(t *testing.T, backend string) *dropProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dropProxy{t: t, ln: ln, backend: backend, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *dropProxy) URL() string { return "http://" + p.ln.Addr().String() }

func (p *dropProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refuse := p.refuse
		p.mu.Unlock()
		if refuse {
			c.Close()
			continue
		}
		b, err := net.Dial("tcp", p.backend)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c] = struct{}{}
		p.conns[b] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, b)
		go p.pipe(b, c)
	}
}

func (p *dropProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, err := io.Copy(dst, src)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		p.t.Logf("proxy: %v", err)
	}
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// drop cuts every connection; with refuse, new ones are refused until allow.
func (p *dropProxy) drop(refuse bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = refuse
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // a reset, as a dead link looks
		}
		c.Close()
	}
}

func (p *dropProxy) allow() {
	p.mu.Lock()
	p.refuse = false
	p.mu.Unlock()
}

func (p *dropProxy) close() {
	p.ln.Close()
	p.drop(true)
	p.wg.Wait()
}
