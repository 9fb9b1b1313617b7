package devices_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/teleop/teleop/devices"
	"github.com/teleop/teleop/devices/proto"
	"github.com/teleop/teleop/devices/sim"
)

// Open a device, wait until it is ready, drive it, and close it (which
// stops it). The simulated robot stands in for a board on /dev/ttyACM0.
func ExampleOpen() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	robot, err := sim.New(&sim.Options{Link: filepath.Join(dir, "robot")})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer robot.Close()

	ready := make(chan struct{})
	dev, err := devices.Open(context.Background(), devices.Config{
		Port:     robot.Link(),           // or /dev/serial/by-id/…, or usb:2341:0043
		BootWait: 100 * time.Millisecond, // a board that resets on open needs the default 2.5s
	}, &devices.Options{
		OnState: func(s devices.State) {
			if s == devices.StateReady {
				select {
				case <-ready:
				default:
					close(ready)
				}
			}
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer dev.Close()
	<-ready
	hello, _ := dev.Hello()
	fmt.Println("firmware:", hello.FW)

	ctx := context.Background()
	res, err := dev.Setpoint(ctx, devices.Cmd("VEL", proto.Float(0.4, 3), proto.Float(0, 3)))
	fmt.Println("VEL:", res.Status, err)
	res, err = dev.Do(ctx, devices.Cmd("OUT", proto.KV("lights", proto.Int(1))))
	fmt.Println("OUT:", res.Status, err)
	res, _ = dev.Do(ctx, devices.Cmd("FLY"))
	fmt.Println("FLY:", res.Status, res.Code)
	// Output:
	// firmware: teleop-sim/0.1.0
	// VEL: ok <nil>
	// OUT: ok <nil>
	// FLY: error unknown
}
