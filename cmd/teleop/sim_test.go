package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/teleop/teleop/devices/conformance"
	"github.com/teleop/teleop/devices/proto"
)

func TestSimCommand(t *testing.T) {
	link := filepath.Join(t.TempDir(), "robot")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	root := newRootCmd(pw, io.Discard)
	root.SetArgs([]string{"sim", "--link", link, "--tlm-hz", "0", "--wdog-ms", "300"})
	done := make(chan error, 1)
	go func() {
		err := root.ExecuteContext(ctx)
		pw.Close()
		done <- err
	}()
	sc := bufio.NewScanner(pr)
	var out []string
	for len(out) < 2 && sc.Scan() {
		out = append(out, sc.Text())
	}
	go io.Copy(io.Discard, pr)
	if len(out) != 2 || !strings.HasPrefix(out[0], "pty: /dev/pts/") || out[1] != "link: "+link {
		t.Fatalf("stdout %q", out)
	}
	if got, _ := os.Readlink(link); got != strings.TrimPrefix(out[0], "pty: ") {
		t.Fatalf("link → %q, stdout %q", got, out)
	}

	c := conformance.Open(t, link)
	c.WaitFor(5*time.Second, "HELLO", func(l conformance.Line) bool { return l.Kind == proto.KindHello })
	c.Send(1, "GET", proto.Word("wdog_ms"))
	if l, _ := c.Reply(5*time.Second, 1); l.Field("wdog_ms") != "300" {
		t.Fatalf("GET wdog_ms: %v", l)
	}
	c.Send(2, "GET", proto.Word("tlm_hz"))
	if l, _ := c.Reply(5*time.Second, 2); l.Field("tlm_hz") != "0" {
		t.Fatalf("GET tlm_hz: %v", l)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("teleop sim: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("teleop sim did not stop on cancel")
	}
	if _, err := os.Lstat(link); !os.IsNotExist(err) {
		t.Fatalf("link left behind: %v", err)
	}
}

func TestSimCommandBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--drop", "2"},
		{"--fault-dir", "sideways"},
		{"--wdog-ms", "1"},
		{"--tlm-hz", "99"},
	} {
		root := newRootCmd(io.Discard, io.Discard)
		root.SetArgs(append([]string{"sim", "--link", ""}, args...))
		if err := root.ExecuteContext(context.Background()); err == nil {
			t.Errorf("teleop sim %v: no error", args)
		}
	}
}
