// Package device defines what the agent needs from a recorder, and no more:
// read its identity, install an image file, reboot, and wait until it answers
// again; optionally (small interfaces a backend may implement) read its
// health and export its configuration. Backends live in subpackages (isapi
// for the recorder's HTTP API, local for an agent running on the recorder
// itself). This package must not know about manifests, policies or the
// daemon.
package device

import "context"

// Identity is what a recorder says about itself.
type Identity struct {
	Model           string            `json:"model"`
	Serial          string            `json:"serial"`
	FirmwareVersion string            `json:"firmware_version"`         // as reported, e.g. "V4.1.25"
	FirmwareBuild   string            `json:"firmware_build,omitempty"` // e.g. "build 200316"
	DeviceType      string            `json:"device_type,omitempty"`    // NVR, DVR, IPCamera
	Raw             map[string]string `json:"raw,omitempty"`            // every field reported, for support
}

// InstallProgress is one progress report of an install.
type InstallProgress struct {
	Phase string // "upload" while the image is sent, "flash" while the device writes it
	Done  int64  // bytes sent, or percent flashed
	Total int64  // image size, or 100
}

// ProgressFunc receives install progress. It must not block.
type ProgressFunc func(InstallProgress)

// InstallStatus says whether the device is flashing an image now.
type InstallStatus struct {
	Upgrading bool `json:"upgrading"`
	Percent   int  `json:"percent"`
}

// Device is a recorder the agent can identify and update.
type Device interface {
	// Identify reads the device's identity.
	Identify(ctx context.Context) (Identity, error)
	// Install uploads the image file and returns once the device reports that
	// flashing finished. It does not reboot.
	Install(ctx context.Context, imagePath string, progress ProgressFunc) error
	// InstallStatus reports whether the device is flashing now.
	InstallStatus(ctx context.Context) (InstallStatus, error)
	// Reboot asks the device to restart.
	Reboot(ctx context.Context) error
	// WaitReady waits, after Reboot, until the device has gone down (or a
	// grace period passed) and answers again, bounded by the backend's
	// timeout, and returns its identity.
	WaitReady(ctx context.Context) (Identity, error)
}
