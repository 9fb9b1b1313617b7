package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"os"
	"path"
	"regexp"
	"strings"
	"time"
)

//go:embed static
var embedded embed.FS

// DefaultTitle is the console's title when Options.Title is empty.
const DefaultTitle = "teleop"

// Options configure the console. The zero value (or nil) serves the embedded
// console titled "teleop".
type Options struct {
	// Title names the console in the page title and its header, e.g.
	// "teleop · demo". Default DefaultTitle.
	Title string
	// Dir, when set, serves the console from this directory (a copy of
	// web/static) instead of the embedded files, read on every request:
	// edit the JavaScript and reload the page, no rebuild.
	Dir string
}

// contentTypes are the only kinds of file the console serves.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".json": "application/json",
}

// file is one servable file, rendered and hashed once (embedded) or per
// request (Options.Dir).
type file struct {
	body  []byte
	ctype string
	etag  string
}

type handler struct {
	title string
	files map[string]*file // URL path → file; nil when serving from dir
	dir   fs.FS
}

// Handler serves the operator console at / (index.html, its modules, CSS and
// icon) with a Content-Security-Policy that admits only this origin and
// WebSockets to this host. Paths it does not know are 404; methods other
// than GET and HEAD are 405. Mount it as the relay's Fallback:
//
//	relay.New(&relay.Options{APIKey: key, APISecret: secret, Fallback: web.Handler(nil)})
func Handler(opts *Options) http.Handler {
	var o Options
	if opts != nil {
		o = *opts
	}
	h := &handler{title: o.Title}
	if h.title == "" {
		h.title = DefaultTitle
	}
	if o.Dir != "" {
		h.dir = os.DirFS(o.Dir)
		return h
	}
	sub, err := fs.Sub(embedded, "static")
	if err != nil {
		panic(fmt.Sprintf("web: embedded static files: %v", err)) // the embed directive guarantees it
	}
	h.files = make(map[string]*file)
	err = fs.WalkDir(sub, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		f, err := h.load(sub, name)
		if err != nil {
			return err
		}
		if f != nil {
			h.files["/"+name] = f
		}
		return nil
	})
	if err != nil {
		panic(fmt.Sprintf("web: embedded static files: %v", err))
	}
	return h
}

// load reads and renders one file; nil for a kind the console does not serve.
func (h *handler) load(fsys fs.FS, name string) (*file, error) {
	ctype, ok := contentTypes[path.Ext(name)]
	if !ok {
		return nil, nil
	}
	body, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if name == "index.html" {
		t, err := template.New(name).Parse(string(body))
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", name, err)
		}
		var b bytes.Buffer
		if err := t.Execute(&b, struct{ Title string }{h.title}); err != nil {
			return nil, fmt.Errorf("render %s: %w", name, err)
		}
		body = b.Bytes()
	}
	sum := sha256.Sum256(body)
	return &file{body: body, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}, nil
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", csp(r.Host))
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer") // a ?token= must not leak to other sites
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Cross-Origin-Opener-Policy", "same-origin")

	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	if p == "/" {
		p = "/index.html"
	}
	f, err := h.lookup(p)
	if err != nil {
		http.Error(w, "console: "+err.Error(), http.StatusInternalServerError)
		return
	}
	if f == nil {
		http.Error(w, "404 page not found", http.StatusNotFound)
		return
	}
	hdr.Set("Content-Type", f.ctype)
	hdr.Set("ETag", f.etag)
	// The files carry no version in their names (no build step), so the
	// browser revalidates every one; an unchanged file costs a 304.
	hdr.Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, p, time.Time{}, bytes.NewReader(f.body))
}

// lookup finds the file for a URL path: nil when there is none.
func (h *handler) lookup(p string) (*file, error) {
	if h.files != nil {
		return h.files[p], nil
	}
	name := strings.TrimPrefix(p, "/")
	if !fs.ValidPath(name) || name == "." {
		return nil, nil
	}
	if st, err := fs.Stat(h.dir, name); err != nil || st.IsDir() {
		return nil, nil
	}
	return h.load(h.dir, name)
}

// validHost is a Host header that may be written into the CSP: a name or
// IPv4 address, or a bracketed IPv6 address, with an optional port.
var validHost = regexp.MustCompile(`^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$`)

// csp is the Content-Security-Policy of every response: scripts, styles and
// images from this origin only, no inline code, no frames, and connections
// only to this origin and its WebSocket endpoints. CSP level 3 lets 'self'
// cover ws(s) to the same host; the explicit ws:// and wss:// sources are
// for browsers that predate it.
func csp(host string) string {
	connect := "'self'"
	if validHost.MatchString(host) {
		connect += " ws://" + host + " wss://" + host
	}
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
		"connect-src " + connect + "; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
}
