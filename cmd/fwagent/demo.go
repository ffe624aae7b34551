package main

import (
	"crypto/ed25519"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fwagent/fwagent/agent"
	"github.com/fwagent/fwagent/internal/cli"
	"github.com/fwagent/fwagent/internal/lab"
	"github.com/fwagent/fwagent/internal/nvrsim"
	"github.com/fwagent/fwagent/manifest"
	"github.com/fwagent/fwagent/verify"
)

// The demo's world: the protected recorder on custom 4.1.20, and a manifest
// offering the right custom image, a standard image for the same model (the
// trap) and a standard image for another model.
const (
	demoModel    = verify.ProtectedModel
	demoFirmware = "V4.1.20"
	demoSerial   = "DS-DEMO-0001"
)

func demoReleases(imageSize int64) []lab.Release {
	return []lab.Release{
		{ID: "nvr-custom-4.1.25", Version: "4.1.25", Build: "200316", Variant: "custom", Size: imageSize,
			TermsURL: "https://www.hikvision.com/en/policies/terms-of-use/",
			Notes:    "custom firmware for iDS-9632NXI-I8/16S: the only firmware this model may run"},
		{ID: "nvr-standard-4.1.30", Version: "4.1.30", Variant: "standard", Size: imageSize,
			Notes: "standard firmware: permanently damages iDS-9632NXI-I8/16S"},
		{ID: "ds7608-standard-4.2.0", Models: []string{"DS-7608NI-K2"}, Version: "4.2.0", Variant: "standard"},
	}
}

func demoCommand() *cobra.Command {
	var (
		keep      bool
		sizeMB    int
		flashSecs float64
	)
	c := &cobra.Command{
		Use:   "demo [--keep]",
		Short: "Run a whole update against the built-in NVR simulator, on loopback only",
		Long: "Start an NVR simulator (iDS-9632NXI-I8/16S on custom 4.1.20), an update server with a manifest\n" +
			"signed by a throwaway key (custom 4.1.25, the standard 4.1.30 trap, and a release for another model),\n" +
			"and the agent with a generated config; then run one full update cycle through the agent's ordinary\n" +
			"code paths. --keep leaves the simulator and the server running for fwagent check/status and curl.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if sizeMB <= 0 || sizeMB > 4096 {
				return cli.Usage(fmt.Errorf("--image-mb %d: give a size from 1 to 4096", sizeMB))
			}
			return runDemo(cmd, keep, int64(sizeMB)<<20, time.Duration(flashSecs*float64(time.Second)))
		},
	}
	c.Flags().BoolVar(&keep, "keep", false, "leave the simulator and the update server running and print their URLs")
	c.Flags().IntVar(&sizeMB, "image-mb", 32, "size of the demo firmware images in MiB")
	c.Flags().Float64Var(&flashSecs, "flash-seconds", 2, "how long the simulated recorder takes to flash")
	return c
}

func runDemo(cmd *cobra.Command, keep bool, imageSize int64, flash time.Duration) error {
	out := cmd.OutOrStdout()
	start := time.Now()
	dir, err := os.MkdirTemp("", "fwagent-demo-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(dir)
	}
	fmt.Fprintf(out, "fwagent demo: everything runs on loopback, in %s\n\n", dir)
	l, err := lab.Start(lab.Options{
		Dir: dir,
		Device: nvrsim.Config{Model: demoModel, Firmware: demoFirmware, Variant: "custom", Serial: demoSerial,
			FlashDuration: flash, RebootDelay: time.Second},
		Releases: demoReleases(imageSize),
	})
	if err != nil {
		return fmt.Errorf("start the demo world: %w", err)
	}
	defer l.Close()
	sc := l.Sim.Config()
	fmt.Fprintf(out, "  NVR simulator  %s  model %s, firmware %s (custom), serial %s\n", l.Sim.URL(), sc.Model, demoFirmware, demoSerial)
	ids := make([]string, 0, len(l.Keys))
	for _, k := range l.Keys {
		ids = append(ids, manifest.KeyID(k.Public().(ed25519.PublicKey)))
	}
	fmt.Fprintf(out, "  update server  %s  manifest serial %d, co-signed by keys %s\n", l.ManifestURL(), l.Manifest().Serial, strings.Join(ids, ", "))
	for _, r := range l.Manifest().Releases {
		fmt.Fprintf(out, "                 release %-22s %-8s %-7s for %v\n", r.ID, r.Variant, r.Version, r.Models)
	}
	fmt.Fprintf(out, "  agent config   %s\n\n", l.ConfigPath)

	cfg, err := l.Config()
	if err != nil {
		return err
	}
	cfg.Log.Level = "info"
	s, err := newSession(cmd, cfg, sessionOptions{fileLog: true, progress: true, forceText: true})
	if err != nil {
		return err
	}
	result := s.agent.Cycle(cmd.Context(), agent.ModeUpdateNow)
	s.Close()

	fmt.Fprintln(out)
	printOutcome(out, result)
	st := l.Sim.State()
	fmt.Fprintf(out, "\nsimulator now:  firmware %s (%s), installs %d, bricked %v\n", st.Firmware, st.Variant, st.Installs, st.Bricked)
	fmt.Fprintf(out, "took %s\n", time.Since(start).Round(100*time.Millisecond))
	if keep {
		printKeep(out, l)
		<-cmd.Context().Done()
	}
	switch {
	case st.Bricked:
		return fmt.Errorf("the simulated recorder was bricked: %s", st.BrickReason)
	case result.Result != agent.ResultInstalled:
		return fmt.Errorf("the demo update did not complete: %s: %s", result.Result, result.Message)
	}
	fmt.Fprintln(out, "demo passed: the standard firmware was refused, the custom 4.1.25 image was proven, installed and confirmed")
	return nil
}

func printKeep(w io.Writer, l *lab.Lab) {
	sc := l.Sim.Config()
	fmt.Fprintf(w, "\nstill running (Ctrl-C to stop):\n")
	fmt.Fprintf(w, "  go run ./cmd/fwagent check  --config %s\n", l.ConfigPath)
	fmt.Fprintf(w, "  go run ./cmd/fwagent status --config %s\n", l.ConfigPath)
	fmt.Fprintf(w, "  go run ./cmd/fwagent logs   --config %s\n", l.ConfigPath)
	fmt.Fprintf(w, "  curl --digest -u %s:%s %s/ISAPI/System/deviceInfo\n", sc.User, sc.Password, l.Sim.URL())
	fmt.Fprintf(w, "  curl %s/debug/state\n", l.Sim.URL())
	fmt.Fprintf(w, "  curl %s\n", l.ManifestURL())
}
