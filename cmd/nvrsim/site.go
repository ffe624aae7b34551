package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/fwagent/fwagent/internal/cli"
	"github.com/fwagent/fwagent/internal/nvrsim"
)

// siteFlags are the settings of nvrsim site.
type siteFlags struct {
	count, basePort                         int
	model, firmware, variant, mix, specFile string
	password, logLevel                      string
	rebootSeconds, flashSeconds             float64
	https                                   bool
}

func newSiteCmd(stdout, stderr io.Writer) *cobra.Command {
	var f siteFlags
	cmd := &cobra.Command{
		Use:   "site",
		Short: "Run a whole site of simulated recorders in one process, each on its own port",
		Long: `nvrsim site runs several simulated recorders at once, as a gateway host sees the
recorders in its rack: --count N of one model, or a mix of models and firmware
from --mix or --spec FILE, one recorder kind per line or comma-separated item:
"[COUNT x] MODEL [FIRMWARE [VARIANT]]", e.g. "2 x iDS-9632NXI-I8/16S 4.1.20 custom,
iDS-9632NXI-I8/S 4.1.20 standard". Recorders listen on consecutive ports from
--base-port (0: free ports), get distinct serials and are named nvr-1, nvr-2, ...;
it prints a devices: list for the agent's config.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serveSite(cmd.Context(), f, stdout, stderr)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.count, "count", 3, "number of recorders of --model (ignored with --mix or --spec)")
	fl.IntVar(&f.basePort, "base-port", 0, "the first recorder's port; the others follow (0: free ports)")
	fl.StringVar(&f.model, "model", nvrsim.ProtectedModel, "the recorders' model (with --count)")
	fl.StringVar(&f.firmware, "firmware", "V4.1.20", "their running firmware version (with --count)")
	fl.StringVar(&f.variant, "variant", "custom", "their firmware variant: custom or standard (with --count)")
	fl.StringVar(&f.mix, "mix", "", `recorder kinds, comma-separated: "[COUNT x] MODEL [FIRMWARE [VARIANT]]"`)
	fl.StringVar(&f.specFile, "spec", "", "a file with one recorder kind per line, as --mix")
	fl.StringVar(&f.password, "password", "", "the recorders' password (default $NVRSIM_PASSWORD, else admin12345)")
	fl.Float64Var(&f.rebootSeconds, "reboot-seconds", 5, "seconds a recorder stays down after a reboot")
	fl.Float64Var(&f.flashSeconds, "flash-seconds", 5, "seconds flashing takes")
	fl.BoolVar(&f.https, "https", false, "serve HTTPS with fresh self-signed certificates (fingerprints are printed)")
	fl.StringVar(&f.logLevel, "log-level", "warn", "log level: debug, info, warn, error")
	return cmd
}

func serveSite(ctx context.Context, f siteFlags, stdout, stderr io.Writer) error {
	log, reboot, flash, err := common(f.logLevel, f.rebootSeconds, f.flashSeconds, stderr)
	if err != nil {
		return err
	}
	if f.basePort < 0 || f.basePort > 65535 {
		return cli.Usage(fmt.Errorf("--base-port %d: give a port from 1 to 65535, or 0 for free ports", f.basePort))
	}
	password := f.password
	if password == "" {
		password = os.Getenv("NVRSIM_PASSWORD")
	}
	base := nvrsim.Config{Password: password, RebootDelay: reboot, FlashDuration: flash, TLS: f.https, Logger: log}
	spec := f.mix
	switch {
	case f.specFile != "" && f.mix != "":
		return cli.Usage(errors.New("--spec and --mix both given: keep one"))
	case f.specFile != "":
		b, err := os.ReadFile(f.specFile)
		if err != nil {
			return cli.Usage(fmt.Errorf("--spec: %w", err))
		}
		spec = string(b)
	case spec == "":
		if f.count < 1 || f.count > 1000 {
			return cli.Usage(fmt.Errorf("--count %d: give 1 to 1000", f.count))
		}
		spec = fmt.Sprintf("%d x %s %s %s", f.count, f.model, f.firmware, f.variant)
	}
	recs, err := nvrsim.ParseSiteSpec(spec, base)
	if err != nil {
		return cli.Usage(err)
	}
	site, err := nvrsim.StartSite(recs, f.basePort)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "nvrsim site: %d recorders (user admin); for the agent's config:\ndevices:\n", len(site.Recorders))
	for i, r := range site.Recorders {
		c := r.Config()
		fmt.Fprintf(stdout, "  - name: %s # %s %s (%s) serial %s\n    backend: isapi\n    isapi:\n      url: %s\n      username: %s\n      password_env: NVRSIM_PASSWORD\n",
			site.Names[i], c.Model, c.Firmware, c.Variant, c.Serial, r.URL(), c.User)
		if fp := r.Fingerprint(); fp != "" {
			fmt.Fprintf(stdout, "      cert_sha256: %s\n", fp)
		}
	}
	<-ctx.Done()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := site.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("stopping the simulators: %w", err)
	}
	fmt.Fprintln(stdout, "nvrsim site: stopped")
	return nil
}
