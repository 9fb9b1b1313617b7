package web_test

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/teleop/teleop/web"
)

func get(t *testing.T, h http.Handler, method, target string, hdr map[string]string) *http.Response {
	t.Helper()
	r := httptest.NewRequest(method, target, nil)
	r.Host = "console.test:7420"
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

func TestHandlerServesTheConsole(t *testing.T) {
	h := web.Handler(nil)
	tests := []struct {
		name, method, path string
		status             int
		ctype              string
		body               string // a substring
	}{
		{"index at root", "GET", "/", 200, "text/html; charset=utf-8", `<script type="module" src="js/main.js">`},
		{"index by name", "GET", "/index.html", 200, "text/html; charset=utf-8", "<title>teleop</title>"},
		{"module", "GET", "/js/session.js", 200, "text/javascript; charset=utf-8", "export class Session"},
		{"stylesheet", "GET", "/console.css", 200, "text/css; charset=utf-8", "--estop"},
		{"icon", "GET", "/favicon.svg", 200, "image/svg+xml", "<svg"},
		{"head", "HEAD", "/js/main.js", 200, "text/javascript; charset=utf-8", ""},
		{"token in query", "GET", "/?token=abc", 200, "text/html; charset=utf-8", "<title>"},
		{"unknown", "GET", "/nope.js", 404, "text/plain; charset=utf-8", "404"},
		{"directory", "GET", "/js/", 404, "text/plain; charset=utf-8", ""},
		{"embed prefix", "GET", "/static/index.html", 404, "text/plain; charset=utf-8", ""},
		{"go source", "GET", "/web.go", 404, "text/plain; charset=utf-8", ""},
		{"post", "POST", "/", 405, "text/plain; charset=utf-8", "method not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := get(t, h, tt.method, tt.path, nil)
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tt.status {
				t.Fatalf("status %d, want %d (%s)", res.StatusCode, tt.status, body)
			}
			if got := res.Header.Get("Content-Type"); got != tt.ctype {
				t.Errorf("Content-Type %q, want %q", got, tt.ctype)
			}
			if !strings.Contains(string(body), tt.body) {
				t.Errorf("body lacks %q:\n%.300s", tt.body, body)
			}
			if tt.method == "HEAD" && len(body) != 0 {
				t.Errorf("HEAD has a body of %d bytes", len(body))
			}
			// Every answer, errors included, carries the security headers.
			csp := res.Header.Get("Content-Security-Policy")
			for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self' ws://console.test:7420 wss://console.test:7420;", "frame-ancestors 'none'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("CSP %q lacks %q", csp, want)
				}
			}
			if strings.Contains(csp, "unsafe") {
				t.Errorf("CSP allows something unsafe: %q", csp)
			}
			for k, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"} {
				if got := res.Header.Get(k); got != want {
					t.Errorf("%s %q, want %q", k, got, want)
				}
			}
			if tt.status == 200 && res.Header.Get("Cache-Control") != "no-cache" {
				t.Errorf("Cache-Control %q, want no-cache", res.Header.Get("Cache-Control"))
			}
			if tt.status == 405 && res.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("Allow %q", res.Header.Get("Allow"))
			}
		})
	}
}

func TestHandlerRevalidates(t *testing.T) {
	h := web.Handler(nil)
	res := get(t, h, "GET", "/js/main.js", nil)
	etag := res.Header.Get("ETag")
	if !regexp.MustCompile(`^"[0-9a-f]{24}"$`).MatchString(etag) {
		t.Fatalf("ETag %q", etag)
	}
	res = get(t, h, "GET", "/js/main.js", map[string]string{"If-None-Match": etag})
	if res.StatusCode != http.StatusNotModified {
		t.Fatalf("revalidation: status %d, want 304", res.StatusCode)
	}
	res = get(t, h, "GET", "/js/main.js", map[string]string{"If-None-Match": `"other"`})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("changed file: status %d, want 200", res.StatusCode)
	}
}

func TestHandlerCSPHost(t *testing.T) {
	h := web.Handler(nil)
	for host, want := range map[string]string{
		"127.0.0.1:7420":  "connect-src 'self' ws://127.0.0.1:7420 wss://127.0.0.1:7420;",
		"[::1]:7420":      "connect-src 'self' ws://[::1]:7420 wss://[::1]:7420;",
		"robot.example":   "connect-src 'self' ws://robot.example wss://robot.example;",
		"bad host; x":     "connect-src 'self';",
		"a.example/evil ": "connect-src 'self';",
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Host = host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if csp := w.Result().Header.Get("Content-Security-Policy"); !strings.Contains(csp, want) {
			t.Errorf("Host %q: CSP %q lacks %q", host, csp, want)
		}
	}
}

func TestHandlerTitle(t *testing.T) {
	h := web.Handler(&web.Options{Title: `teleop · <demo>`})
	body, _ := io.ReadAll(get(t, h, "GET", "/", nil).Body)
	if !strings.Contains(string(body), "<title>teleop · &lt;demo&gt;</title>") {
		t.Fatalf("title not rendered and escaped:\n%.400s", body)
	}
}

// TestHandlerDir serves a copy of static/ from disk, read per request.
func TestHandlerDir(t *testing.T) {
	dir := t.TempDir()
	err := filepath.WalkDir("static", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, strings.TrimPrefix(p, "static"))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	h := web.Handler(&web.Options{Dir: dir})
	if err := os.WriteFile(filepath.Join(dir, "js", "model.js"), []byte("// edited\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(get(t, h, "GET", "/js/model.js", nil).Body)
	if string(body) != "// edited\n" {
		t.Fatalf("dir mode served %q, want the edited file", body)
	}
	if res := get(t, h, "GET", "/", nil); res.StatusCode != 200 {
		t.Fatalf("index from dir: %d", res.StatusCode)
	}
	for _, p := range []string{"/../web.go", "/js", "/nope.html"} {
		if res := get(t, h, "GET", p, nil); res.StatusCode != 404 {
			t.Errorf("%s from dir: %d, want 404", p, res.StatusCode)
		}
	}
}

// TestEveryReferenceIsServed follows the page's src/href attributes and the
// modules' imports: a missing file would be a blank console.
func TestEveryReferenceIsServed(t *testing.T) {
	h := web.Handler(nil)
	attr := regexp.MustCompile(`(?:src|href)="([^"#?:]+)"`)
	imp := regexp.MustCompile(`(?m)^import .* from '\./([^']+)';$`)
	seen := map[string]bool{}
	var visit func(p string)
	visit = func(p string) {
		if seen[p] {
			return
		}
		seen[p] = true
		res := get(t, h, "GET", p, nil)
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 {
			t.Errorf("%s: status %d", p, res.StatusCode)
			return
		}
		if strings.HasSuffix(p, ".html") || p == "/" {
			for _, m := range attr.FindAllStringSubmatch(string(body), -1) {
				visit("/" + m[1])
			}
		}
		if strings.HasSuffix(p, ".js") {
			for _, m := range imp.FindAllStringSubmatch(string(body), -1) {
				visit(filepath.Dir(p) + "/" + m[1])
			}
		}
	}
	visit("/")
	for _, want := range []string{"/js/main.js", "/js/session.js", "/js/drive.js", "/js/charts.js", "/js/model.js", "/console.css", "/favicon.svg"} {
		if !seen[want] {
			t.Errorf("%s is not reachable from the page", want)
		}
	}
}
