package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/teleop/teleop/signaling"
	"github.com/teleop/teleop/signaling/token"
)

// startServer runs `teleop server args…` in-process and returns the URL it
// printed, the rest of its stdout, and a function that cancels it and
// returns its error.
func startServer(t *testing.T, args ...string) (string, []string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	root := newRootCmd(pw, io.Discard)
	root.SetArgs(append([]string{"server"}, args...))
	done := make(chan error, 1)
	go func() {
		err := root.ExecuteContext(ctx)
		pw.Close()
		done <- err
	}()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var before []string
	timeout := time.After(10 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				cancel()
				t.Fatalf("server exited before listening: %v\nstdout: %q", <-done, before)
			}
			if u, found := strings.CutPrefix(l, "listening on "); found {
				go func() { // keep draining stdout
					for range lines {
					}
				}()
				stop := func() error {
					cancel()
					select {
					case err := <-done:
						return err
					case <-time.After(15 * time.Second):
						t.Fatal("server did not stop")
						return nil
					}
				}
				t.Cleanup(func() { cancel() })
				return u, before, stop
			}
			before = append(before, l)
		case <-timeout:
			cancel()
			t.Fatalf("no listening line; stdout so far %q", before)
		}
	}
}

func TestServerRunsAndStops(t *testing.T) {
	t.Setenv("TELEOP_API_KEY", "12345678")
	t.Setenv("TELEOP_API_SECRET", "from-the-env")
	u, _, stop := startServer(t, "--listen", "127.0.0.1:0", "--api-secret", "the-secret", "--grace", "5s", "--log-level", "debug")

	// The flag wins over TELEOP_API_SECRET.
	tok, err := token.New("12345678", "the-secret", "demo", nil)
	if err != nil {
		t.Fatal(err)
	}
	ws := "ws" + strings.TrimPrefix(u, "http") + "/v1/connect?" + url.Values{"token": {tok}}.Encode()
	c, _, err := websocket.DefaultDialer.Dial(ws, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var w signaling.Frame
	if err := c.ReadJSON(&w); err != nil || w.Op != signaling.OpWelcome {
		t.Fatalf("welcome: %+v %v", w, err)
	}
	if w.Limits.GraceMs != 5000 {
		t.Fatalf("--grace not applied: %+v", w.Limits)
	}
	if err := c.WriteJSON(signaling.Frame{Op: signaling.OpSignal, ID: "1", Type: "hello", Data: "world"}); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for !got["signal"] || !got["result"] {
		var f signaling.Frame
		if err := c.ReadJSON(&f); err != nil {
			t.Fatal(err)
		}
		switch {
		case f.Op == signaling.OpSignal && f.Data == "world":
			got["signal"] = true
		case f.Op == signaling.OpResult && f.Code == 200:
			got["result"] = true
		default:
			t.Fatalf("got %+v", f)
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("server exited with %v", err)
	}
	// The socket was closed with 1001: reconnect elsewhere.
	_, _, err = c.ReadMessage()
	if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != websocket.CloseGoingAway {
		t.Fatalf("after shutdown: %v", err)
	}
}

func TestServerDevMode(t *testing.T) {
	t.Setenv("TELEOP_API_KEY", "")
	t.Setenv("TELEOP_API_SECRET", "")
	t.Run("prints credentials and serves loopback", func(t *testing.T) {
		u, out, stop := startServer(t, "--listen", "127.0.0.1:0")
		text := strings.Join(out, "\n")
		if !strings.Contains(text, "export TELEOP_API_KEY=") || !strings.Contains(text, "teleop token --session demo") {
			t.Fatalf("dev mode printed %q", text)
		}
		var key, secret string
		for _, f := range strings.Fields(text) {
			if v, ok := strings.CutPrefix(f, "TELEOP_API_KEY="); ok {
				key = v
			}
			if v, ok := strings.CutPrefix(f, "TELEOP_API_SECRET="); ok {
				secret = v
			}
		}
		if len(key) != 8 || strings.Trim(key, "0123456789") != "" || len(secret) < 32 {
			t.Fatalf("dev key %q secret %q", key, secret)
		}
		tok, err := token.New(key, secret, "demo", nil)
		if err != nil {
			t.Fatal(err)
		}
		c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(u, "http")+"/v1/connect?token="+url.QueryEscape(tok), nil)
		if err != nil {
			t.Fatal(err)
		}
		var w signaling.Frame
		if err := c.ReadJSON(&w); err != nil || w.Op != signaling.OpWelcome {
			t.Fatalf("welcome %+v %v", w, err)
		}
		c.Close()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	})
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
		t.Run("refuses "+addr, func(t *testing.T) {
			root := newRootCmd(io.Discard, io.Discard)
			root.SetArgs([]string{"server", "--listen", addr})
			err := root.ExecuteContext(context.Background())
			if err == nil || !strings.Contains(err.Error(), "--dev-allow-remote") {
				t.Fatalf("dev mode on %s: %v", addr, err)
			}
		})
	}
	t.Run("half credentials", func(t *testing.T) {
		root := newRootCmd(io.Discard, io.Discard)
		root.SetArgs([]string{"server", "--listen", "127.0.0.1:0", "--api-key", "12345678"})
		if err := root.ExecuteContext(context.Background()); err == nil || !strings.Contains(err.Error(), "secret") {
			t.Fatalf("key without secret: %v", err)
		}
	})
}

func TestServerTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeSelfSigned(t, dir)
	u, _, stop := startServer(t, "--listen", "127.0.0.1:0", "--api-key", "12345678", "--api-secret", "s",
		"--tls-cert", certFile, "--tls-key", keyFile)
	if !strings.HasPrefix(u, "https://") {
		t.Fatalf("listening on %s", u)
	}
	tok, err := token.New("12345678", "s", "demo", nil)
	if err != nil {
		t.Fatal(err)
	}
	d := websocket.Dialer{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} // the test's own self-signed certificate
	c, _, err := d.Dial("wss"+strings.TrimPrefix(u, "https")+"/v1/connect?token="+url.QueryEscape(tok), nil)
	if err != nil {
		t.Fatal(err)
	}
	var w signaling.Frame
	if err := c.ReadJSON(&w); err != nil || w.Op != signaling.OpWelcome {
		t.Fatalf("welcome over TLS: %+v %v", w, err)
	}
	c.Close()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	root := newRootCmd(io.Discard, io.Discard)
	root.SetArgs([]string{"server", "--listen", "127.0.0.1:0", "--api-key", "1", "--api-secret", "s", "--tls-cert", certFile})
	if err := root.ExecuteContext(context.Background()); err == nil || !strings.Contains(err.Error(), "--tls-key") {
		t.Fatalf("--tls-cert alone: %v", err)
	}
}

// writeSelfSigned writes a self-signed certificate for 127.0.0.1 and its key.
func writeSelfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "teleop test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
