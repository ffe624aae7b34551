// Package local is the device backend for an agent running on the recorder
// itself: the identity comes from a file or a command, and installing and
// rebooting are done by configured commands.
//
// It owns running those commands safely: argv lists executed directly (never
// through a shell, so no string is ever interpolated by one), timeouts that
// kill the whole process group, every output line captured into the log,
// and exit statuses turned into *device.Error. It must not decide whether an
// image may be installed: that is done by the verify package before Install
// is called. It does not implement device.HealthReader nor
// device.ConfigExporter: an agent on the recorder has no portable way to read
// its disks and channels or export its configuration, so the agent treats
// both as not supported (and a required configuration backup defers the
// install, naming install.config_backup).
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/fwagent/fwagent/device"
)

// ImageToken in an InstallCommand argument is replaced by the image path.
const ImageToken = "{image}"

// ExitTempFail is the exit status (EX_TEMPFAIL from sysexits.h) by which a
// command says its failure is temporary and worth retrying later. Any other
// non-zero status is a fatal failure.
const ExitTempFail = 75

// Config configures a local Device. Zero durations take the defaults named
// on each field.
type Config struct {
	// IdentityFile holds the identity as key=value lines or a JSON object
	// with the keys model, serial, firmware_version, firmware_build,
	// device_type (others are kept as raw fields).
	IdentityFile string
	// IdentityCommand prints the identity as key=value lines.
	IdentityCommand []string
	// InstallCommand installs an image. An argument containing {image} gets
	// the image path in its place; without one, the path is appended as the
	// last argument. Output lines "progress=NN" report flashing progress.
	InstallCommand []string
	// RebootCommand restarts the device.
	RebootCommand []string
	// StatusCommand, optional, prints upgrading=true|false and percent=N.
	StatusCommand []string

	// Timings are explicit (the agent passes the config's device.local
	// keys, whose defaults live in agent/config); New refuses a zero one.
	InstallTimeout time.Duration // the install command
	CommandTimeout time.Duration // every other command
	RebootTimeout  time.Duration // WaitReady's bound
	PollInterval   time.Duration // between identity polls in WaitReady

	Logger logrus.FieldLogger // default: discard
}

// Device is a recorder the agent runs on.
type Device struct {
	cfg        Config
	log        logrus.FieldLogger
	installing atomic.Bool
}

var _ device.Device = (*Device)(nil)

// ErrConfig means the Config is unusable; the message names the field.
var ErrConfig = errors.New("local device config")

// ErrNotConfigured means an operation's command is not configured.
var ErrNotConfigured = errors.New("command not configured")

// New checks cfg and returns a Device. It runs nothing.
func New(cfg Config) (*Device, error) {
	switch {
	case cfg.IdentityFile == "" && len(cfg.IdentityCommand) == 0:
		return nil, fmt.Errorf("%w: set identity_file or identity_command", ErrConfig)
	case cfg.IdentityFile != "" && len(cfg.IdentityCommand) != 0:
		return nil, fmt.Errorf("%w: set only one of identity_file and identity_command", ErrConfig)
	}
	for name, argv := range map[string][]string{
		"identity_command": cfg.IdentityCommand, "install_command": cfg.InstallCommand,
		"reboot_command": cfg.RebootCommand, "status_command": cfg.StatusCommand,
	} {
		if len(argv) > 0 && strings.TrimSpace(argv[0]) == "" {
			return nil, fmt.Errorf("%w: %s starts with an empty program name", ErrConfig, name)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"install_timeout", cfg.InstallTimeout}, {"command_timeout", cfg.CommandTimeout},
		{"reboot_timeout", cfg.RebootTimeout}, {"poll_interval", cfg.PollInterval}} {
		if d.v <= 0 {
			return nil, fmt.Errorf("%w: %s is %s: give a duration more than zero", ErrConfig, d.name, d.v)
		}
	}
	log := cfg.Logger
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = l
	}
	if e, ok := log.(*logrus.Entry); !ok || e.Data["device"] == nil {
		log = log.WithField("device", "local")
	}
	return &Device{cfg: cfg, log: log}, nil
}

// String names the backend.
func (d *Device) String() string { return "local device" }

// maxIdentity caps an identity file or command output.
const maxIdentity = 64 << 10

// Identify reads the identity file or runs the identity command.
func (d *Device) Identify(ctx context.Context) (device.Identity, error) {
	var b []byte
	var src string
	if d.cfg.IdentityFile != "" {
		src = "identity_file " + d.cfg.IdentityFile
		f, err := os.Open(d.cfg.IdentityFile)
		if err != nil {
			return device.Identity{}, &device.Error{Op: "identify", Code: device.CodeIdentityUnreadable, Transient: true, Err: fmt.Errorf("read %s: %w", src, err)}
		}
		defer f.Close()
		b, err = io.ReadAll(io.LimitReader(f, maxIdentity+1))
		if err != nil {
			return device.Identity{}, &device.Error{Op: "identify", Code: device.CodeIdentityUnreadable, Transient: true, Err: fmt.Errorf("read %s: %w", src, err)}
		}
	} else {
		src = "identity_command"
		out, err := d.run(ctx, "identify", d.cfg.IdentityCommand, d.cfg.CommandTimeout, nil)
		if err != nil {
			return device.Identity{}, err
		}
		b = out
	}
	if len(b) > maxIdentity {
		return device.Identity{}, &device.Error{Op: "identify", Code: device.CodeBadIdentity, Err: fmt.Errorf("%s is over %d bytes", src, maxIdentity)}
	}
	id, err := ParseIdentity(b)
	if err != nil {
		return device.Identity{}, &device.Error{Op: "identify", Code: device.CodeBadIdentity, Err: fmt.Errorf("%s: %w", src, err)}
	}
	return id, nil
}

var progressLine = regexp.MustCompile(`(?i)^\s*progress\s*[=:]?\s*(\d{1,3})\s*%?\s*$`)

// Install runs the install command with the image path and returns when it
// exits. Output lines "progress=NN" are reported as flash progress.
func (d *Device) Install(ctx context.Context, imagePath string, progress device.ProgressFunc) error {
	if len(d.cfg.InstallCommand) == 0 {
		return &device.Error{Op: "install", Code: device.CodeNotConfigured, Err: fmt.Errorf("%w: set install_command", ErrNotConfigured)}
	}
	fi, err := os.Stat(imagePath)
	if err != nil || !fi.Mode().IsRegular() {
		return &device.Error{Op: "install", Code: device.CodeBadImage, Err: fmt.Errorf("image %s is not a readable regular file: %v", imagePath, err)}
	}
	if progress == nil {
		progress = func(device.InstallProgress) {}
	}
	argv := InstallArgv(d.cfg.InstallCommand, imagePath)
	d.installing.Store(true)
	defer d.installing.Store(false)
	progress(device.InstallProgress{Phase: "flash", Done: 0, Total: 100})
	onLine := func(line string) {
		if m := progressLine.FindStringSubmatch(line); m != nil {
			if p, err := strconv.Atoi(m[1]); err == nil && p <= 100 {
				progress(device.InstallProgress{Phase: "flash", Done: int64(p), Total: 100})
			}
		}
	}
	if _, err := d.run(ctx, "install", argv, d.cfg.InstallTimeout, onLine); err != nil {
		return err
	}
	progress(device.InstallProgress{Phase: "flash", Done: 100, Total: 100})
	return nil
}

// InstallArgv returns the install command's argv for imagePath: every
// occurrence of {image} replaced, or the path appended when there is none.
// The path stays one argument whatever characters it holds.
func InstallArgv(cmd []string, imagePath string) []string {
	argv := make([]string, 0, len(cmd)+1)
	found := false
	for _, a := range cmd {
		if strings.Contains(a, ImageToken) {
			found = true
			a = strings.ReplaceAll(a, ImageToken, imagePath)
		}
		argv = append(argv, a)
	}
	if !found {
		argv = append(argv, imagePath)
	}
	return argv
}

// InstallStatus runs the status command when there is one; otherwise it
// reports whether this Device is running the install command now.
func (d *Device) InstallStatus(ctx context.Context) (device.InstallStatus, error) {
	if len(d.cfg.StatusCommand) == 0 {
		return device.InstallStatus{Upgrading: d.installing.Load()}, nil
	}
	out, err := d.run(ctx, "status", d.cfg.StatusCommand, d.cfg.CommandTimeout, nil)
	if err != nil {
		return device.InstallStatus{}, err
	}
	st, err := parseStatus(out)
	if err != nil {
		return st, &device.Error{Op: "status", Code: device.CodeBadStatus, Err: fmt.Errorf("status_command: %w", err)}
	}
	return st, nil
}

// Reboot runs the reboot command.
func (d *Device) Reboot(ctx context.Context) error {
	if len(d.cfg.RebootCommand) == 0 {
		return &device.Error{Op: "reboot", Code: device.CodeNotConfigured, Err: fmt.Errorf("%w: set reboot_command", ErrNotConfigured)}
	}
	d.log.Info("running the reboot command")
	_, err := d.run(ctx, "reboot", d.cfg.RebootCommand, d.cfg.CommandTimeout, nil)
	return err
}

// WaitReady polls Identify until it succeeds, bounded by RebootTimeout. An
// identity that exists but does not parse ends the wait at once.
func (d *Device) WaitReady(ctx context.Context) (device.Identity, error) {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, d.cfg.RebootTimeout)
	defer cancel()
	tick := time.NewTicker(d.cfg.PollInterval)
	defer tick.Stop()
	var last error
	for {
		id, err := d.Identify(ctx)
		if err == nil {
			return id, nil
		}
		var de *device.Error
		if errors.As(err, &de) && de.Code == "badIdentity" {
			return device.Identity{}, &device.Error{Op: "wait", Code: de.Code, Err: de.Err}
		}
		last = err
		select {
		case <-tick.C:
		case <-ctx.Done():
			if parent.Err() != nil {
				return device.Identity{}, &device.Error{Op: "wait", Err: parent.Err()}
			}
			return device.Identity{}, &device.Error{Op: "wait", Code: device.CodeRebootTimeout, Transient: true,
				Err: fmt.Errorf("%w: no identity within %s after the reboot (reboot_timeout); last error: %v", device.ErrUnreachable, d.cfg.RebootTimeout, last)}
		}
	}
}
