// Package backend builds the device backend an agent config selects: the
// ISAPI client or the local command backend. The commands wire it into the
// agent (agent.Options.Backend), so that package agent knows the Device
// interface only, never a backend.
package backend

import (
	"fmt"

	"github.com/sirupsen/logrus"

	"github.com/fwagent/fwagent/agent/config"
	"github.com/fwagent/fwagent/device"
	"github.com/fwagent/fwagent/device/isapi"
	"github.com/fwagent/fwagent/device/local"
)

// New builds the device backend the config selects (device.backend).
func New(cfg *config.Config, log logrus.FieldLogger) (device.Device, error) {
	switch cfg.Device.Backend {
	case config.BackendISAPI:
		c := cfg.Device.ISAPI
		return isapi.New(isapi.Config{
			BaseURL:            c.URL,
			Username:           c.Username,
			Password:           c.Password,
			AllowBasic:         c.AllowBasic,
			CAFile:             c.CAFile,
			CertSHA256:         c.CertSHA256,
			InsecureSkipVerify: c.InsecureSkipVerify,
			RequestTimeout:     c.RequestTimeout,
			UploadTimeout:      c.UploadTimeout,
			FlashTimeout:       c.FlashTimeout,
			RebootTimeout:      c.RebootTimeout,
			DownGrace:          c.DownGrace,
			PollInterval:       c.PollInterval,
			RetryMax:           c.RetryMax,
			RetryWaitMin:       cfg.Retry.WaitMin,
			RetryWaitMax:       cfg.Retry.WaitMax,
			Logger:             log,
		})
	case config.BackendLocal:
		c := cfg.Device.Local
		return local.New(local.Config{
			IdentityFile:    c.IdentityFile,
			IdentityCommand: c.IdentityCommand,
			InstallCommand:  c.InstallCommand,
			RebootCommand:   c.RebootCommand,
			StatusCommand:   c.StatusCommand,
			InstallTimeout:  c.InstallTimeout,
			CommandTimeout:  c.CommandTimeout,
			RebootTimeout:   c.RebootTimeout,
			PollInterval:    c.PollInterval,
			Logger:          log,
		})
	}
	return nil, fmt.Errorf("device.backend %q: use %q or %q", cfg.Device.Backend, config.BackendISAPI, config.BackendLocal)
}
