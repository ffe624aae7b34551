package isapi

import (
	"errors"
	"net"
	"testing"

	"github.com/fwagent/fwagent/device"
	"github.com/fwagent/fwagent/internal/testport"
)

// closedURL returns the URL of a loopback port reserved for the test that
// nobody listens on: a dial to it is refused.
func closedURL(t *testing.T) string {
	t.Helper()
	return "http://" + testport.Addr(t)
}

func TestADeviceNeverReachedIsReportedUnreachable(t *testing.T) {
	url := closedURL(t)
	ops := []struct {
		name string
		op   string
		run  func(*Client) error
	}{
		{"a reboot sent to a closed port is not reported as accepted", "reboot", func(c *Client) error { return c.Reboot(testCtx(t)) }},
		{"an identify sent to a closed port keeps the dial error in its chain", "identify", func(c *Client) error { _, err := c.Identify(testCtx(t)); return err }},
	}
	for _, tt := range ops {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newTestClient(t, url, func(cfg *Config) { cfg.RetryMax = 0 })
			err := tt.run(c)
			if err == nil {
				t.Fatal("err = nil, want an error: the device was never reached")
			}
			var de *device.Error
			if !errors.As(err, &de) || de.Op != tt.op || de.Code != "unreachable" || !de.Transient {
				t.Errorf("err = %#v (%v), want a transient %s error with code unreachable", err, err, tt.op)
			}
			if !errors.Is(err, device.ErrUnreachable) {
				t.Errorf("err = %v, want it to wrap device.ErrUnreachable", err)
			}
			var oe *net.OpError
			if !errors.As(err, &oe) || oe.Op != "dial" || !isDialError(err) {
				t.Errorf("err = %v, want the *net.OpError of the dial in its chain", err)
			}
		})
	}
}
