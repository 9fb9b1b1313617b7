package devices

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fakeSys builds a sysfs and /dev tree like a Raspberry Pi's with an Uno
// (cdc_acm), an FTDI adapter (usb-serial), two identical CH340 boards, the
// PL011 console UART and an 8250 placeholder.
func fakeSys(t *testing.T) (sysRoot, devRoot string) {
	t.Helper()
	root := t.TempDir()
	sysRoot, devRoot = filepath.Join(root, "sys"), filepath.Join(root, "dev")
	write := func(path, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, path string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, path); err != nil {
			t.Fatal(err)
		}
	}
	usbDev := func(dir, vid, pid, serial, mfr, product string) {
		write(filepath.Join(sysRoot, dir, "idVendor"), vid)
		write(filepath.Join(sysRoot, dir, "idProduct"), pid)
		if serial != "" {
			write(filepath.Join(sysRoot, dir, "serial"), serial)
		}
		write(filepath.Join(sysRoot, dir, "manufacturer"), mfr)
		write(filepath.Join(sysRoot, dir, "product"), product)
	}
	// tty registers a tty whose sysfs device is devDir, with a driver.
	tty := func(name, ttyDir, devDir, driver string) {
		write(filepath.Join(sysRoot, ttyDir, "dev"), "166:0")
		rel, _ := filepath.Rel(filepath.Join(sysRoot, ttyDir), filepath.Join(sysRoot, devDir))
		link(rel, filepath.Join(sysRoot, ttyDir, "device"))
		link(filepath.Join("../../drivers", driver), filepath.Join(sysRoot, devDir, "driver"))
		rel, _ = filepath.Rel(filepath.Join(sysRoot, "class/tty"), filepath.Join(sysRoot, ttyDir))
		link(rel, filepath.Join(sysRoot, "class/tty", name))
		write(filepath.Join(devRoot, name), "")
	}
	// Uno: cdc_acm binds the interface; the tty's device is the interface.
	usbDev("devices/platform/usb/1-1", "2341", "0043", "85736323838351F0A1C1", "Arduino (www.arduino.cc)", "Arduino Uno")
	write(filepath.Join(sysRoot, "devices/platform/usb/1-1/1-1:1.0/bInterfaceNumber"), "00")
	tty("ttyACM0", "devices/platform/usb/1-1/1-1:1.0/tty/ttyACM0", "devices/platform/usb/1-1/1-1:1.0", "cdc_acm")
	// FTDI: usb-serial; the tty's device is ttyUSB0 under the interface.
	usbDev("devices/platform/usb/1-2", "0403", "6001", "A10KZ3X1", "FTDI", "FT232R USB UART")
	write(filepath.Join(sysRoot, "devices/platform/usb/1-2/1-2:1.0/bInterfaceNumber"), "00")
	tty("ttyUSB0", "devices/platform/usb/1-2/1-2:1.0/ttyUSB0/tty/ttyUSB0", "devices/platform/usb/1-2/1-2:1.0/ttyUSB0", "ftdi_sio")
	// Two CH340s without serial numbers.
	for i, port := range []string{"1-3", "1-4"} {
		name := "ttyUSB" + string(rune('1'+i))
		usbDev("devices/platform/usb/"+port, "1a86", "7523", "", "QinHeng", "USB Serial")
		tty(name, "devices/platform/usb/"+port+"/"+port+":1.0/"+name+"/tty/"+name, "devices/platform/usb/"+port+"/"+port+":1.0/"+name, "ch341-uart")
	}
	// The Pi's PL011, with the console on it.
	tty("ttyAMA0", "devices/platform/soc/fe201000.serial/tty/ttyAMA0", "devices/platform/soc/fe201000.serial", "uart-pl011")
	write(filepath.Join(sysRoot, "devices/platform/soc/fe201000.serial/tty/ttyAMA0/console"), "Y")
	// A PC's 16550A behind the serial-base bus (Linux ≥ 6.5): the tty's
	// device is the "port" device; the hardware driver is two levels up.
	tty("ttyS0", "devices/pnp0/00:00/00:00:0/00:00:0.0/tty/ttyS0", "devices/pnp0/00:00/00:00:0/00:00:0.0", "port")
	write(filepath.Join(sysRoot, "devices/pnp0/00:00/00:00:0/00:00:0.0/tty/ttyS0/type"), "4")
	link("../../../../bus/serial-base", filepath.Join(sysRoot, "devices/pnp0/00:00/00:00:0/00:00:0.0/subsystem"))
	link("../../../bus/serial-base", filepath.Join(sysRoot, "devices/pnp0/00:00/00:00:0/subsystem"))
	link("../../drivers/ctrl", filepath.Join(sysRoot, "devices/pnp0/00:00/00:00:0/driver"))
	link("../../bus/pnp", filepath.Join(sysRoot, "devices/pnp0/00:00/subsystem"))
	link("../../drivers/serial", filepath.Join(sysRoot, "devices/pnp0/00:00/driver"))
	// An 8250 placeholder with no UART (type 0), and a vt with no device.
	tty("ttyS1", "devices/platform/serial8250/tty/ttyS1", "devices/platform/serial8250", "serial8250")
	write(filepath.Join(sysRoot, "devices/platform/serial8250/tty/ttyS1/type"), "0")
	write(filepath.Join(sysRoot, "devices/virtual/tty/tty1/dev"), "4:1")
	link("../../devices/virtual/tty/tty1", filepath.Join(sysRoot, "class/tty/tty1"))
	write(filepath.Join(devRoot, "tty1"), "")
	// udev links.
	link("../../ttyACM0", filepath.Join(devRoot, "serial/by-id/usb-Arduino__www.arduino.cc__0043_85736323838351F0A1C1-if00"))
	link("../../ttyACM0", filepath.Join(devRoot, "serial/by-path/platform-usb-1-1:1.0"))
	link("../../ttyUSB0", filepath.Join(devRoot, "serial/by-id/usb-FTDI_FT232R_USB_UART_A10KZ3X1-if00-port0"))
	return sysRoot, devRoot
}

func TestListPorts(t *testing.T) {
	sysRoot, devRoot := fakeSys(t)
	ports, err := listPorts(sysRoot, devRoot)
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]PortInfo{}
	var paths []string
	for _, p := range ports {
		rel, _ := filepath.Rel(devRoot, p.Path)
		byPath[rel] = p
		paths = append(paths, rel)
	}
	if want := []string{"ttyACM0", "ttyAMA0", "ttyS0", "ttyUSB0", "ttyUSB1", "ttyUSB2"}; !reflect.DeepEqual(paths, want) {
		t.Fatalf("ports = %v, want %v", paths, want)
	}
	uno := byPath["ttyACM0"]
	if !uno.USB || uno.ID() != "2341:0043" || uno.Serial != "85736323838351F0A1C1" || uno.Product != "Arduino Uno" ||
		uno.Manufacturer != "Arduino (www.arduino.cc)" || uno.Driver != "cdc_acm" || uno.Interface != "00" || len(uno.Links) != 2 {
		t.Errorf("uno = %+v", uno)
	}
	ftdi := byPath["ttyUSB0"]
	if ftdi.ID() != "0403:6001" || ftdi.Serial != "A10KZ3X1" || ftdi.Driver != "ftdi_sio" || len(ftdi.Links) != 1 ||
		!strings.Contains(ftdi.Links[0], "by-id/usb-FTDI") {
		t.Errorf("ftdi = %+v", ftdi)
	}
	if s0 := byPath["ttyS0"]; s0.USB || s0.Driver != "serial" {
		t.Errorf("ttyS0 = %+v", s0)
	}
	if ama := byPath["ttyAMA0"]; ama.USB || !ama.Console || ama.Driver != "uart-pl011" || ama.ID() != "" {
		t.Errorf("ttyAMA0 = %+v", ama)
	}
}

func TestResolve(t *testing.T) {
	sysRoot, devRoot := fakeSys(t)
	cases := []struct {
		sel, want, err string
	}{
		{"usb:2341:0043", "ttyACM0", ""},
		{"usb:0403:6001:A10KZ3X1", "ttyUSB0", ""},
		{"usb:0403:6001:WRONG", "", "no such USB serial device"},
		{"usb:1A86:7523", "", "matches 2 ports"},
		{"usb:dead:beef", "", "no such USB serial device"},
		{filepath.Join(devRoot, "serial/by-id/usb-FTDI_FT232R_USB_UART_A10KZ3X1-if00-port0"), "ttyUSB0", ""},
		{filepath.Join(devRoot, "ttyACM0"), "ttyACM0", ""},
		{filepath.Join(devRoot, "ttyACM9"), "", "not present"},
	}
	for _, tc := range cases {
		t.Run(tc.sel, func(t *testing.T) {
			sel, err := ParseSelector(tc.sel)
			if err != nil {
				t.Fatal(err)
			}
			got, err := resolve(sel, sysRoot, devRoot)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("resolve = %q, %v; want error %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != filepath.Join(devRoot, tc.want) {
				t.Fatalf("resolve = %q, %v; want %s", got, err, tc.want)
			}
		})
	}
}

// ListPorts on the machine running the tests: whatever it finds, it must
// not open anything (nothing to assert beyond not failing; a container
// without /dev nodes finds none).
func TestListPortsHere(t *testing.T) {
	ports, err := ListPorts()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ports {
		t.Logf("%+v", p)
	}
}

func TestParseSelector(t *testing.T) {
	cases := []struct {
		in   string
		want Selector
		err  bool
	}{
		{"/dev/ttyACM0", Selector{Path: "/dev/ttyACM0"}, false},
		{"usb:2341:0043", Selector{VID: "2341", PID: "0043"}, false},
		{"usb:2341:0043:ABC:DEF", Selector{VID: "2341", PID: "0043", Serial: "ABC:DEF"}, false},
		{"usb:2341", Selector{}, true},
		{"usb:23411:0043", Selector{}, true},
		{"usb:zzzz:0043", Selector{}, true},
		{"usb:2341:0043:", Selector{}, true},
		{"", Selector{}, true},
	}
	for _, tc := range cases {
		got, err := ParseSelector(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseSelector(%q) = %+v, %v", tc.in, got, err)
		}
	}
}
