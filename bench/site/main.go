// Command site measures one fwagent serving a whole site of simulated
// recorders (the site gateway), each figure in a child process so that the
// parent's simulators and update server do not count:
//
//   - for each site size N: one `fwagent update --now` of every recorder
//     (install.max_parallel 4): image GETs and bytes served by the update
//     server (the target: one image and one manifest for any N), every
//     recorder updated and confirmed, the gateway's peak memory
//     (ru_maxrss) and its ratio to the one-recorder agent's;
//   - the CPU time `fwagent run` spends idle between polls, per minute, as
//     N grows (the target: at most linear in N).
//
// It prints figures and ratios; nothing is asserted on time.
//
// Usage: go run ./bench/site -fwagent PATH [-n 1,4,16,64] [-size BYTES] [-idle 20s]
// (bench/site.sh builds fwagent and runs it).
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fwagent/fwagent/internal/lab"
	"github.com/fwagent/fwagent/internal/nvrsim"
)

// singleDeviceRSS is the one-recorder agent's peak memory in the README's
// benchmark (bench/run.sh (b), a 1 GiB update).
const singleDeviceRSS = 17.6

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench/site:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("site", flag.ContinueOnError)
	bin := fs.String("fwagent", "", "path of the fwagent binary to measure (required)")
	sizes := fs.String("n", "1,4,16,64", "site sizes to measure, comma-separated")
	size := fs.Int64("size", 16<<20, "size of the release's image in bytes")
	idle := fs.Duration("idle", 20*time.Second, "how long to measure each idle gateway (scaled to a minute)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *bin == "" {
		return errors.New("-fwagent PATH is required: build it with go build -o PATH ./cmd/fwagent")
	}
	var ns []int
	for _, f := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 256 {
			return fmt.Errorf("-n %q: give site sizes from 1 to 256", *sizes)
		}
		ns = append(ns, n)
	}
	fmt.Fprintf(out, "load average at the start: %s\n", loadavg())

	base, err := measure(*bin, 0, *size, *idle)
	if err != nil {
		return fmt.Errorf("one recorder (device:): %w", err)
	}
	fmt.Fprintf(out, "\none recorder (device: form, the lone agent), %d MiB image:\n", *size>>20)
	fmt.Fprintf(out, "  update %v, peak memory %.1f MiB, idle CPU %v/min\n", base.took.Round(time.Millisecond), base.rss, base.idlePerMin.Round(time.Microsecond))
	fmt.Fprintf(out, "\n%6s %10s %10s %12s %14s %10s %12s %12s %14s %12s\n", "N", "update", "image GETs", "image bytes", "manifest GETs", "RSS MiB", "RSS/1-rec", "RSS/17.6MiB", "idle CPU/min", "idle/N")
	for _, n := range ns {
		m, err := measure(*bin, n, *size, *idle)
		if err != nil {
			return fmt.Errorf("a site of %d: %w", n, err)
		}
		fmt.Fprintf(out, "%6d %10v %10d %12d %14d %10.1f %12.2f %12.2f %14v %12v\n", n, m.took.Round(time.Millisecond), m.imageGETs, m.imageBytes,
			m.manifestGETs, m.rss, m.rss/base.rss, m.rss/singleDeviceRSS, m.idlePerMin.Round(time.Microsecond), (m.idlePerMin / time.Duration(n)).Round(time.Microsecond))
		if m.imageBytes != *size {
			fmt.Fprintf(out, "       bytes fetched: %d image bytes for one %d byte image: %.2f images\n", m.imageBytes, *size, float64(m.imageBytes)/float64(*size))
		}
	}
	fmt.Fprintf(out, "\ntargets: one image GET and one image of bytes for any N; RSS within 1.5x of the one-recorder figure; idle CPU at most linear in N (idle/N flat or falling)\n")
	fmt.Fprintf(out, "load average at the end: %s\n", loadavg())
	return nil
}

type figures struct {
	took                                time.Duration
	rss                                 float64 // MiB
	imageGETs, imageBytes, manifestGETs int64
	idlePerMin                          time.Duration
}

// measure runs one update and one idle period of a site of n recorders
// (n 0: the device: form).
func measure(bin string, n int, size int64, idle time.Duration) (figures, error) {
	var f figures
	dir, err := os.MkdirTemp("", "fwagent-bench-site-")
	if err != nil {
		return f, err
	}
	defer os.RemoveAll(dir)
	opts := lab.Options{
		Dir:       dir,
		Device:    nvrsim.Config{Model: nvrsim.ProtectedModel, Firmware: "V4.1.20", RebootDelay: 50 * time.Millisecond},
		Releases:  []lab.Release{{ID: "custom-4.1.25", Version: "4.1.25", Variant: "custom", Size: size}},
		ExtraYAML: "install:\n  max_parallel: 4\n",
	}
	for i := 0; i < n; i++ {
		opts.Site = append(opts.Site, lab.SiteDevice{Device: nvrsim.Config{Model: nvrsim.ProtectedModel, Firmware: "V4.1.20"}})
	}
	l, err := lab.Start(opts)
	if err != nil {
		return f, err
	}
	defer l.Close()
	cfg, err := os.ReadFile(l.ConfigPath)
	if err != nil {
		return f, err
	}
	// Debug level: the daemon logs when it starts sleeping, which tells
	// when its first cycle ended.
	if err := os.WriteFile(l.ConfigPath, []byte(strings.Replace(string(cfg), "level: info", "level: debug", 1)), 0o600); err != nil {
		return f, err
	}

	start := time.Now()
	ru, stdout, err := child(bin, "update", "--now", "--config", l.ConfigPath)
	f.took = time.Since(start)
	if err != nil {
		return f, fmt.Errorf("fwagent update --now: %w\n%s", err, tail(stdout))
	}
	sims := []*nvrsim.Server{l.Sim}
	if l.Site != nil {
		sims = l.Site.Recorders
	}
	for i, s := range sims {
		if st := s.State(); st.Bricked || st.Installs != 1 || !strings.EqualFold(st.Firmware, "V4.1.25") {
			return f, fmt.Errorf("recorder %d did not end on 4.1.25 flashed once: %+v", i+1, st)
		}
	}
	f.rss = float64(ru.Maxrss) / 1024
	f.imageGETs, f.imageBytes, f.manifestGETs = l.ImageRequests.Load(), l.ImageBytes.Load(), l.ManifestRequests.Load()

	cpu, err := idleCPU(bin, l, idle)
	if err != nil {
		return f, err
	}
	f.idlePerMin = time.Duration(float64(cpu) * float64(time.Minute) / float64(idle))
	return f, nil
}

func tail(s string) string {
	if len(s) > 4000 {
		return "..." + s[len(s)-4000:]
	}
	return s
}

// child runs fwagent with args and returns its resource usage.
func child(bin string, args ...string) (*syscall.Rusage, string, error) {
	var buf bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	ru := &syscall.Rusage{}
	if cmd.ProcessState != nil {
		if r, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			ru = r
		}
	}
	return ru, buf.String(), err
}

// idleCPU starts fwagent run, waits for its first cycle to end, and
// measures the CPU it uses over d (all threads, /proc schedstat).
func idleCPU(bin string, l *lab.Lab, d time.Duration) (time.Duration, error) {
	cmd := exec.Command(bin, "run", "--config", l.ConfigPath)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	deadline := time.Now().Add(2 * time.Minute)
	for !logged(l.LogDir, "sleeping until the next cycle") {
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("fwagent run did not finish its first cycle in 2 minutes:\n%s", tail(buf.String()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Let the first cycle's goroutines and connections wind down.
	time.Sleep(time.Second)
	a, err := schedCPU(cmd.Process.Pid)
	if err != nil {
		return 0, err
	}
	time.Sleep(d)
	b, err := schedCPU(cmd.Process.Pid)
	if err != nil {
		return 0, err
	}
	return b - a, nil
}

// logged reports whether a log file in dir contains s.
func logged(dir, s string) bool {
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil && bytes.Contains(b, []byte(s)) {
			return true
		}
	}
	return false
}

// schedCPU sums the CPU time of a process's threads from /proc.
func schedCPU(pid int) (time.Duration, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("no /proc/%d/task/*/schedstat: %v", pid, err)
	}
	var total time.Duration
	for _, t := range tasks {
		s, err := os.ReadFile(t)
		if err != nil {
			continue // a thread that ended
		}
		if f := strings.Fields(string(s)); len(f) > 0 {
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			total += time.Duration(ns)
		}
	}
	return total, nil
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if err != nil || len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
