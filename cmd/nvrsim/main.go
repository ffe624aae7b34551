// Command nvrsim runs the NVR simulator (internal/nvrsim) on a real socket,
// and writes test firmware images. Flags and wiring only.
//go:generate env FWAGENT_UPDATE_DOCS=1 go test -run ^TestGeneratedDocs$ .

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/fwagent/fwagent/internal/cli"
	"github.com/fwagent/fwagent/internal/nvrsim"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
)

func main() { cli.Main("nvrsim", run) }

// run executes nvrsim with args; tests call it directly. The simulator runs
// until ctx ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return cli.Execute(ctx, newRootCmd(stdout, stderr), args, stdout, stderr)
}

// Set at build time with -ldflags "-X main.version=1.2.3 -X main.commit=abc1234";
// without them, Go's build info fills them.
var version, commit string

// newRootCmd builds nvrsim's whole command tree (also for the generated man
// pages and CLI reference).
func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := newServeCmd(stdout, stderr)
	root.AddCommand(newMkimageCmd(stdout))
	root.AddCommand(newSiteCmd(stdout, stderr))
	cli.SetVersion(root, cli.Build{Version: version, Commit: commit})
	return root
}

// serveFlags are the simulator's command-line settings.
type serveFlags struct {
	listen, model, firmware, build, variant, serial, user, password, namespace, logLevel string
	rebootSeconds, flashSeconds, lockSeconds                                             float64
	lockAfter                                                                            int
	https, allowBasic                                                                    bool

	// Health and backup.
	disks                                 []string
	diskStatus, diskStatusAfterFlash      map[string]string
	channels, channelsLost, configSize    int
	channelReturnSeconds                  float64
	oldFirmware, exportFails, exportNoSup bool
}

func newServeCmd(stdout, stderr io.Writer) *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use: "nvrsim",
		Example: "  nvrsim --listen 127.0.0.1:0 --password secret-1 --flash-seconds 1 --reboot-seconds 1\n" +
			"  nvrsim --https --model iDS-9632NXI-I8/S --firmware 4.1.30 --variant standard",
		Short: "Simulate a Hikvision NVR's ISAPI (digest auth, deviceInfo, firmware upload, reboot) for fwagent",
		Long: `nvrsim serves a simulated recorder's ISAPI: digest auth with lockout after
failed logins, deviceInfo, firmware upload (PUT or POST multipart), upgradeStatus
and reboot, disks (ContentMgmt/Storage), camera channels (InputProxy/channels/status)
and the configuration export (System/configurationData), plus GET /debug/state
(JSON, no auth) and GET/PUT /debug/faults (the fault knobs, also set by --fault-* flags). It models the damage rule:
iDS-9632NXI-I8/16S is bricked by any image but the custom firmware 4.1.25.
Write test images with "nvrsim mkimage".`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve(cmd.Context(), f, stdout, stderr)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "127.0.0.1:8080", "address to listen on (host:port; port 0 picks a free one)")
	fl.StringVar(&f.model, "model", nvrsim.ProtectedModel, "device model")
	fl.StringVar(&f.firmware, "firmware", "V4.1.20", "running firmware version")
	fl.StringVar(&f.build, "build", "230619", "running firmware build date")
	fl.StringVar(&f.variant, "variant", "custom", "running firmware variant: custom or standard")
	fl.StringVar(&f.serial, "serial", "SIM0123456789", "serial number")
	fl.StringVar(&f.user, "user", "admin", "user name")
	fl.StringVar(&f.password, "password", "", "password (default $NVRSIM_PASSWORD, else admin12345)")
	fl.StringVar(&f.namespace, "namespace", "isapi", "XML namespace: isapi, hikvision, std-cgi or psia")
	fl.Float64Var(&f.rebootSeconds, "reboot-seconds", 5, "seconds the recorder stays down after a reboot")
	fl.Float64Var(&f.flashSeconds, "flash-seconds", 5, "seconds flashing takes")
	fl.IntVar(&f.lockAfter, "lock-after", 7, "failed logins in a row that lock the account")
	fl.Float64Var(&f.lockSeconds, "lock-seconds", 600, "seconds a lock lasts")
	fl.BoolVar(&f.https, "https", false, "serve HTTPS with a fresh self-signed certificate (its SHA-256 fingerprint is printed)")
	fl.BoolVar(&f.allowBasic, "allow-basic", false, "also offer and accept HTTP Basic auth")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fl.StringSliceVar(&f.disks, "disks", []string{"ok", "ok"}, "the disks' status words, one per disk (ok, idle, formating, error, ...)")
	fl.IntVar(&f.channels, "channels", 8, "IP camera channels (0: none; channel status answers notSupport)")
	fl.Float64Var(&f.channelReturnSeconds, "channel-return-seconds", 0, "seconds after a reboot until the channels are back online")
	fl.IntVar(&f.configSize, "config-size", 64<<10, "bytes of the configuration file System/configurationData exports")
	fl.BoolVar(&f.oldFirmware, "old-firmware", false, "old firmware: no Storage, channel status or configurationData endpoints (404)")
	fl.StringToStringVar(&f.diskStatus, "fault-disk-status", nil, "fault: disks' reported status by id, e.g. 1=formating")
	fl.StringToStringVar(&f.diskStatusAfterFlash, "fault-disk-status-after-flash", nil, "fault: disks' status by id once back from a reboot into a flashed image, e.g. 2=error")
	fl.IntVar(&f.channelsLost, "fault-channels-lost-after-flash", 0, "fault: this many channels (the highest ids) never come back after a flash")
	fl.BoolVar(&f.exportFails, "fault-export-fails", false, "fault: configuration exports answer HTTP 500")
	fl.BoolVar(&f.exportNoSup, "fault-export-not-supported", false, "fault: configuration exports answer notSupport")
	return cmd
}

// seconds turns a flag's seconds into a duration, refusing negative ones.
func seconds(name string, s float64) (time.Duration, error) {
	if s < 0 {
		return 0, cli.Usage(fmt.Errorf("--%s is %v: give zero or more seconds", name, s))
	}
	return time.Duration(s * float64(time.Second)), nil
}

// common checks the flags serve and site share: the log level and the
// reboot and flash times.
func common(logLevel string, rebootSeconds, flashSeconds float64, stderr io.Writer) (log *logrus.Logger, reboot, flash time.Duration, err error) {
	level, err := logrus.ParseLevel(logLevel)
	if err != nil {
		return nil, 0, 0, cli.Usage(fmt.Errorf("--log-level %q: use debug, info, warn or error", logLevel))
	}
	log = logrus.New()
	log.SetOutput(stderr)
	log.SetLevel(level)
	if reboot, err = seconds("reboot-seconds", rebootSeconds); err != nil {
		return nil, 0, 0, err
	}
	if flash, err = seconds("flash-seconds", flashSeconds); err != nil {
		return nil, 0, 0, err
	}
	return log, reboot, flash, nil
}

func serve(ctx context.Context, f serveFlags, stdout, stderr io.Writer) error {
	log, reboot, flash, err := common(f.logLevel, f.rebootSeconds, f.flashSeconds, stderr)
	if err != nil {
		return err
	}
	lockFor, err := seconds("lock-seconds", f.lockSeconds)
	if err != nil {
		return err
	}
	if f.lockAfter < 1 {
		return cli.Usage(fmt.Errorf("--lock-after is %d: give 1 or more", f.lockAfter))
	}
	if f.channels < 0 || f.channelsLost < 0 || f.configSize < 1 {
		return cli.Usage(fmt.Errorf("--channels, --fault-channels-lost-after-flash and --config-size take positive numbers"))
	}
	chanReturn, err := seconds("channel-return-seconds", f.channelReturnSeconds)
	if err != nil {
		return err
	}
	disks := make([]nvrsim.Disk, 0, len(f.disks))
	for i, st := range f.disks {
		disks = append(disks, nvrsim.Disk{ID: i + 1, Status: st})
	}
	channels := f.channels
	if channels == 0 {
		channels = -1
	}
	password := f.password
	if password == "" {
		password = os.Getenv("NVRSIM_PASSWORD")
	}
	cfg := nvrsim.Config{
		Model: f.model, Firmware: f.firmware, Build: f.build, Variant: f.variant, Serial: f.serial,
		User: f.user, Password: password, Namespace: f.namespace, AllowBasic: f.allowBasic,
		RebootDelay: reboot, FlashDuration: flash, LockAfter: f.lockAfter, LockFor: lockFor,
		TLS: f.https, Logger: log,
		Disks: disks, Channels: channels, ChannelReturnDelay: chanReturn, ConfigSize: f.configSize, OldFirmware: f.oldFirmware,
	}
	if _, err := nvrsim.NewChecked(cfg); err != nil {
		return cli.Usage(err)
	}
	srv, err := nvrsim.Listen(f.listen, cfg)
	if err != nil {
		return err
	}
	srv.SetFaults(nvrsim.Faults{
		DiskStatus: f.diskStatus, DiskStatusAfterFlash: f.diskStatusAfterFlash, ChannelsLostAfterFlash: f.channelsLost,
		ExportFails: f.exportFails, ExportNotSupported: f.exportNoSup,
	})
	c := srv.Config()
	fmt.Fprintf(stdout, "nvrsim: %s %s (%s) serial %s at %s\n", c.Model, c.Firmware, c.Variant, c.Serial, srv.URL())
	fmt.Fprintf(stdout, "user: %s\n", c.User)
	if fp := srv.Fingerprint(); fp != "" {
		fmt.Fprintf(stdout, "certificate sha256: %s\n", fp)
	}
	fmt.Fprintf(stdout, "state: %s/debug/state\n", srv.URL())
	<-ctx.Done()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("stopping the simulator: %w", err)
	}
	fmt.Fprintln(stdout, "nvrsim: stopped")
	return nil
}
