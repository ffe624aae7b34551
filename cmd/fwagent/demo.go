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

// The demo's world: a site of three recorders (two of the protected model
// on custom 4.1.20 and a look-alike iDS-9632NXI-I8/S on standard 4.1.20),
// and a manifest offering the right custom image, a standard image for the
// protected model (the trap), a standard image for the look-alike and a
// standard image for another model.
const (
	demoModel     = verify.ProtectedModel
	demoLookAlike = "iDS-9632NXI-I8/S"
	demoFirmware  = "V4.1.20"
	demoSerial    = "DS-DEMO-0001"
)

// demoSite is the demo's site: name, model, variant and serial of each
// recorder.
var demoSite = []struct{ name, model, variant, serial string }{
	{"hall", demoModel, "custom", demoSerial},
	{"yard", demoModel, "custom", "DS-DEMO-0002"},
	{"gate", demoLookAlike, "standard", "DS-DEMO-0003"},
}

func demoReleases(imageSize int64) []lab.Release {
	return []lab.Release{
		{ID: "nvr-custom-4.1.25", Version: "4.1.25", Build: "200316", Variant: "custom", Size: imageSize,
			TermsURL: "https://www.hikvision.com/en/policies/terms-of-use/",
			Notes:    "custom firmware for iDS-9632NXI-I8/16S: the only firmware this model may run"},
		{ID: "nvr-standard-4.1.30", Version: "4.1.30", Variant: "standard", Size: imageSize,
			Notes: "standard firmware: permanently damages iDS-9632NXI-I8/16S"},
		{ID: "i8s-standard-4.1.30", Models: []string{demoLookAlike}, Version: "4.1.30", Variant: "standard", Size: imageSize,
			Notes: "standard firmware for the look-alike iDS-9632NXI-I8/S"},
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
		Long: "Start a site of three simulated recorders (two iDS-9632NXI-I8/16S on custom 4.1.20 and a look-alike\n" +
			"iDS-9632NXI-I8/S on standard 4.1.20), an update server with a manifest co-signed by throwaway keys\n" +
			"(custom 4.1.25, the standard 4.1.30 trap for the 16S, standard 4.1.30 for the /S, and a release for\n" +
			"another model), and one agent serving the whole site with a generated config; then run one full update\n" +
			"cycle through the agent's ordinary code paths: each 16S gets custom 4.1.25 (one download for both), the\n" +
			"/S is never offered the custom image. --keep leaves the simulators and the server running for fwagent\n" +
			"check/status and curl.",
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
	var site []lab.SiteDevice
	for _, d := range demoSite {
		site = append(site, lab.SiteDevice{Name: d.name, Device: nvrsim.Config{Model: d.model, Firmware: demoFirmware, Variant: d.variant,
			Serial: d.serial, FlashDuration: flash, RebootDelay: time.Second}})
	}
	l, err := lab.Start(lab.Options{
		Dir:       dir,
		Site:      site,
		Releases:  demoReleases(imageSize),
		ExtraYAML: "install:\n  max_parallel: 2\n",
	})
	if err != nil {
		return fmt.Errorf("start the demo world: %w", err)
	}
	defer l.Close()
	for i, r := range l.Site.Recorders {
		sc := r.Config()
		fmt.Fprintf(out, "  recorder %-5s %s  model %-18s firmware %s (%s), serial %s\n", l.Site.Names[i], r.URL(), sc.Model, demoFirmware, sc.Variant, sc.Serial)
	}
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
	s, err := NewMain(cmd, cfg, mainOptions{fileLog: true, progress: true, forceText: true})
	if err != nil {
		return err
	}
	results := s.site.Cycle(cmd.Context(), agent.ModeUpdateNow, nil)
	s.Close()

	for _, r := range results {
		fmt.Fprintf(out, "\n== %s ==\n", r.Device)
		printOutcome(out, r.Outcome)
	}
	fmt.Fprintln(out)
	sum := siteSummary{Recorders: len(results), Results: map[string]int{}, Exit: siteExit(results)}
	for _, r := range results {
		sum.Results[string(r.Result)]++
	}
	printSite(out, results, sum)
	fmt.Fprintln(out)
	var problems []string
	for i, r := range l.Site.Recorders {
		st := r.State()
		fmt.Fprintf(out, "simulator %-5s firmware %s (%s), installs %d, bricked %v\n", l.Site.Names[i], st.Firmware, st.Variant, st.Installs, st.Bricked)
		if st.Bricked {
			problems = append(problems, fmt.Sprintf("%s was bricked: %s", l.Site.Names[i], st.BrickReason))
		}
		if results[i].Result != agent.ResultInstalled {
			problems = append(problems, fmt.Sprintf("%s: %s: %s", results[i].Device, results[i].Result, results[i].Message))
		}
		if st.Model == demoLookAlike && st.Variant != "standard" {
			problems = append(problems, fmt.Sprintf("%s (%s) got the %s image", l.Site.Names[i], st.Model, st.Variant))
		}
	}
	fmt.Fprintf(out, "image downloads from the update server: %d (one per release for the whole site)\n", l.ImageRequests.Load())
	fmt.Fprintf(out, "took %s\n", time.Since(start).Round(100*time.Millisecond))
	if keep {
		printKeep(out, l)
		<-cmd.Context().Done()
	}
	if len(problems) > 0 {
		return fmt.Errorf("the demo update did not complete: %s", strings.Join(problems, "; "))
	}
	fmt.Fprintln(out, "demo passed: the standard firmware was refused on both 16S, which got the custom 4.1.25 image (downloaded once, proven, installed and confirmed); the look-alike /S got its own standard release and never the custom image")
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
