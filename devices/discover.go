package devices

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// PortInfo describes one serial port as sysfs shows it. Nothing here comes
// from opening the port: go.bug.st/serial's GetPortsList opens ttyS* nodes to
// probe them, which reprograms a port another program is using (on a Pi,
// the console UART), so discovery reads only sysfs and /dev.
type PortInfo struct {
	Path         string   `json:"path"`                   // /dev/ttyACM0
	Links        []string `json:"links,omitempty"`        // /dev/serial/by-id/…, /dev/serial/by-path/…
	Driver       string   `json:"driver,omitempty"`       // cdc_acm, ftdi_sio, ch341, serial8250, …
	USB          bool     `json:"usb"`                    // VID…Interface are set
	VID          string   `json:"vid,omitempty"`          // lower-case hex, as in sysfs
	PID          string   `json:"pid,omitempty"`          //
	Serial       string   `json:"serial,omitempty"`       // USB iSerial
	Manufacturer string   `json:"manufacturer,omitempty"` //
	Product      string   `json:"product,omitempty"`      //
	Interface    string   `json:"interface,omitempty"`    // USB interface number, for multi-port adapters
	Console      bool     `json:"console,omitempty"`      // the kernel console runs on it
}

// ID is "VID:PID" for USB ports, "" otherwise.
func (p PortInfo) ID() string {
	if !p.USB {
		return ""
	}
	return p.VID + ":" + p.PID
}

// ListPorts lists the serial ports of this machine from /sys/class/tty and
// /dev, sorted by path, without opening any. Virtual terminals and ptys are
// not listed (they have no device in sysfs), nor are 8250 placeholders with
// no UART behind them (sysfs type 0).
func ListPorts() ([]PortInfo, error) { return listPorts("/sys", "/dev") }

func listPorts(sysRoot, devRoot string) ([]PortInfo, error) {
	classDir := filepath.Join(sysRoot, "class", "tty")
	entries, err := os.ReadDir(classDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // no tty class: no ports (containers, non-Linux sysfs)
	}
	if err != nil {
		return nil, fmt.Errorf("list serial ports: %w", err)
	}
	links := serialLinks(devRoot)
	var out []PortInfo
	for _, e := range entries {
		name := e.Name()
		ttyDir := filepath.Join(classDir, name)
		devLink := filepath.Join(ttyDir, "device")
		if _, err := os.Lstat(devLink); err != nil {
			continue // virtual: vt, ptmx, console, pty
		}
		if t, ok := readAttr(filepath.Join(ttyDir, "type")); ok && t == "0" {
			continue // 8250 placeholder: PORT_UNKNOWN, no UART
		}
		node := filepath.Join(devRoot, name)
		if _, err := os.Stat(node); err != nil {
			continue // no device node (e.g. a container without it)
		}
		p := PortInfo{Path: node, Links: links[node]}
		if c, _ := readAttr(filepath.Join(ttyDir, "console")); c == "Y" {
			p.Console = true
		}
		if dev, err := filepath.EvalSymlinks(devLink); err == nil {
			p.Driver = driverOf(dev)
			usbDetails(sysRoot, dev, &p)
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b PortInfo) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

// driverOf names the driver of a tty's device. Since Linux 6.5 a UART's
// tty hangs off serial-base "port" and "ctrl" devices; the driver that
// names the hardware (serial8250, uart-pl011, …) is on their parent.
func driverOf(dev string) string {
	for i := 0; i < 4; i++ {
		sub, _ := os.Readlink(filepath.Join(dev, "subsystem"))
		if filepath.Base(sub) != "serial-base" {
			break
		}
		dev = filepath.Dir(dev)
	}
	drv, err := os.Readlink(filepath.Join(dev, "driver"))
	if err != nil {
		return ""
	}
	return filepath.Base(drv)
}

// usbDetails walks up from a tty's device directory to the USB device (the
// first ancestor with idVendor) and reads its descriptors. The USB interface
// (ttyACM: the device dir itself; ttyUSB: its parent) gives the interface
// number.
func usbDetails(sysRoot, dev string, p *PortInfo) {
	top := filepath.Join(sysRoot, "devices")
	if real, err := filepath.EvalSymlinks(top); err == nil {
		top = real
	}
	for dir := dev; strings.HasPrefix(dir, top+string(filepath.Separator)); dir = filepath.Dir(dir) {
		if p.Interface == "" {
			if n, ok := readAttr(filepath.Join(dir, "bInterfaceNumber")); ok {
				p.Interface = n
			}
		}
		vid, ok := readAttr(filepath.Join(dir, "idVendor"))
		if !ok {
			continue
		}
		p.USB = true
		p.VID = strings.ToLower(vid)
		p.PID, _ = readAttr(filepath.Join(dir, "idProduct"))
		p.PID = strings.ToLower(p.PID)
		p.Serial, _ = readAttr(filepath.Join(dir, "serial"))
		p.Manufacturer, _ = readAttr(filepath.Join(dir, "manufacturer"))
		p.Product, _ = readAttr(filepath.Join(dir, "product"))
		return
	}
}

// serialLinks maps device nodes to the udev links that point at them.
func serialLinks(devRoot string) map[string][]string {
	m := map[string][]string{}
	for _, sub := range []string{"by-id", "by-path"} {
		dir := filepath.Join(devRoot, "serial", sub)
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			link := filepath.Join(dir, e.Name())
			if target, err := filepath.EvalSymlinks(link); err == nil {
				m[target] = append(m[target], link)
			}
		}
	}
	return m
}

func readAttr(path string) (string, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}

// Resolve finds the device node a selector names now: a path's symlinks
// are followed (by-id links and the simulator's stable link move when the
// device comes back under a new name), a USB selector is matched against
// ListPorts. It never opens a port.
func Resolve(sel Selector) (string, error) { return resolve(sel, "/sys", "/dev") }

func resolve(sel Selector, sysRoot, devRoot string) (string, error) {
	if sel.Path != "" {
		p, err := filepath.EvalSymlinks(sel.Path)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return "", fmt.Errorf("port %s: not present", sel.Path)
			}
			return "", fmt.Errorf("port %s: %w", sel.Path, err)
		}
		return p, nil
	}
	ports, err := listPorts(sysRoot, devRoot)
	if err != nil {
		return "", err
	}
	var match []string
	for _, p := range ports {
		if p.USB && p.VID == sel.VID && p.PID == sel.PID && (sel.Serial == "" || p.Serial == sel.Serial) {
			match = append(match, p.Path)
		}
	}
	switch len(match) {
	case 0:
		return "", fmt.Errorf("port %s: no such USB serial device present", sel)
	case 1:
		return match[0], nil
	}
	return "", fmt.Errorf("port %s: matches %d ports (%s); add the serial number or use a /dev/serial/by-id path",
		sel, len(match), strings.Join(match, ", "))
}
