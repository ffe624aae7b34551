// Command agent measures the whole fwagent binary against a lab (the NVR
// simulator and a signed update server on loopback), each figure in a child
// process so that the parent's servers do not count:
//
//   - the peak memory (ru_maxrss) of `fwagent update --now` installing a
//     1 GiB release: download, verify, ISAPI upload, reboot, confirm;
//   - the cost of a poll that finds the manifest unchanged (one 304): HTTP
//     requests and bytes on the wire to the update server, ISAPI requests,
//     and the time of the whole `fwagent update` process;
//   - the CPU time `fwagent run` spends idle between two polls.
//
// Usage: go run ./bench/agent -fwagent PATH [-size BYTES] [-idle 60s] [-dir DIR]
// (bench/run.sh builds fwagent and runs it).
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fwagent/fwagent/internal/lab"
	"github.com/fwagent/fwagent/internal/nvrsim"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench/agent:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	bin := fs.String("fwagent", "", "path of the fwagent binary to measure (required)")
	size := fs.Int64("size", 1<<30, "size of the release's image in bytes")
	idle := fs.Duration("idle", time.Minute, "how long to measure the idle daemon")
	dir := fs.String("dir", "", "work directory (default: a new temporary directory, removed at the end)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *bin == "" {
		return errors.New("-fwagent PATH is required: build it with go build -o PATH ./cmd/fwagent")
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "fwagent-bench-agent-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*dir = d
	}

	fmt.Fprintf(out, "starting a lab with a %d byte custom 4.1.25 release for %s...\n", *size, nvrsim.ProtectedModel)
	l, err := lab.Start(lab.Options{
		Dir:      *dir,
		Device:   nvrsim.Config{Model: nvrsim.ProtectedModel, Firmware: "V4.1.20"},
		Releases: []lab.Release{{ID: "custom-4.1.25", Version: "4.1.25", Variant: "custom", Size: *size, TermsURL: "https://vendor.example/terms"}},
	})
	if err != nil {
		return err
	}
	defer l.Close()

	// The manifest goes through a proxy that counts the bytes on the wire.
	proxy, err := newCountingProxy(strings.TrimPrefix(l.Updates.URL, "http://"))
	if err != nil {
		return err
	}
	defer proxy.Close()
	cfg, err := os.ReadFile(l.ConfigPath)
	if err != nil {
		return err
	}
	text := strings.Replace(string(cfg), l.ManifestURL(), "http://"+proxy.Addr()+"/manifest.json", 1)
	// Debug level: the daemon logs when it starts sleeping, which tells
	// when its first cycle ended.
	text = strings.Replace(text, "level: info", "level: debug", 1)
	if err := os.WriteFile(l.ConfigPath, []byte(text), 0o600); err != nil {
		return err
	}

	// (b) The whole update, in a child process.
	start := time.Now()
	ru, stdout, err := child(*bin, "update", "--now", "--config", l.ConfigPath)
	took := time.Since(start)
	if err != nil {
		return fmt.Errorf("fwagent update --now: %w\n%s", err, stdout)
	}
	st := l.Sim.State()
	if st.Bricked || st.Installs != 1 || !strings.EqualFold(st.Firmware, "V4.1.25") {
		return fmt.Errorf("the update did not end on 4.1.25: simulator %+v\n%s", st, stdout)
	}
	fmt.Fprintf(out, "\nwhole update of a %d MiB image (download, verify, ISAPI upload, reboot, confirm): %v\n", *size>>20, took.Round(time.Millisecond))
	fmt.Fprintf(out, "  peak memory (ru_maxrss of the fwagent process): %.1f MiB (target < 64 MB = %.1f MiB)  ratio to target %.2f\n",
		float64(ru.Maxrss)/1024, 64e6/(1<<20), float64(ru.Maxrss)*1024/64e6)
	fmt.Fprintf(out, "  CPU: user %v, system %v\n", tv(ru.Utime).Round(time.Millisecond), tv(ru.Stime).Round(time.Millisecond))

	// (c) A poll that finds the manifest unchanged.
	proxy.Reset()
	reqs0, nm0, img0, isapi0 := l.ManifestRequests.Load(), l.NotModified.Load(), l.ImageBytes.Load(), l.Sim.State().Requests
	start = time.Now()
	ru, stdout, err = child(*bin, "update", "--config", l.ConfigPath)
	took = time.Since(start)
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 3) { // 3: nothing to do
		return fmt.Errorf("fwagent update (poll): %w\n%s", err, stdout)
	}
	fmt.Fprintf(out, "\nunchanged-manifest poll (fwagent update, a whole process):\n")
	fmt.Fprintf(out, "  manifest requests %d (answered 304: %d), %d bytes sent + %d bytes received on the wire, image bytes %d, ISAPI requests %d\n",
		l.ManifestRequests.Load()-reqs0, l.NotModified.Load()-nm0, proxy.up.Load(), proxy.down.Load(), l.ImageBytes.Load()-img0, l.Sim.State().Requests-isapi0)
	fmt.Fprintf(out, "  process wall time %v (start-up included), CPU user %v system %v, peak memory %.1f MiB\n",
		took.Round(time.Millisecond), tv(ru.Utime).Round(time.Millisecond), tv(ru.Stime).Round(time.Millisecond), float64(ru.Maxrss)/1024)

	// (d) The idle daemon.
	cpu, err := idleCPU(*bin, l, *idle)
	if err != nil {
		return err
	}
	perMin := time.Duration(float64(cpu.sched) * float64(time.Minute) / float64(*idle))
	fmt.Fprintf(out, "\nidle daemon (fwagent run, after its first cycle) over %v:\n", *idle)
	fmt.Fprintf(out, "  (start-up and the first cycle, an unchanged manifest, took %v of CPU before)\n", cpu.first.Round(10*time.Microsecond))
	fmt.Fprintf(out, "  CPU %v (all threads, /proc schedstat), utime+stime %v (/proc stat, 10 ms ticks)\n", cpu.sched.Round(10*time.Microsecond), cpu.ticks)
	fmt.Fprintf(out, "  per minute: %v (target < 50ms)  ratio to target %.3f\n", perMin.Round(10*time.Microsecond), float64(perMin)/float64(50*time.Millisecond))
	fmt.Fprintf(out, "\nload average at the end: %s\n", loadavg())
	return nil
}

// child runs fwagent with args and returns its resource usage.
func child(bin string, args ...string) (*syscall.Rusage, string, error) {
	var buf bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	if cmd.ProcessState == nil {
		return nil, buf.String(), err
	}
	ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if ru == nil {
		ru = &syscall.Rusage{}
	}
	return ru, buf.String(), err
}

func tv(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }

type cpuUse struct {
	sched time.Duration // summed over threads, nanosecond resolution
	ticks time.Duration // utime + stime from /proc/PID/stat
	first time.Duration // sched at the start of the idle period: start-up and first cycle
}

// idleCPU starts fwagent run, waits for its first cycle to end, and
// measures the CPU it uses over d.
func idleCPU(bin string, l *lab.Lab, d time.Duration) (cpuUse, error) {
	cmd := exec.Command(bin, "run", "--config", l.ConfigPath)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		return cpuUse{}, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	pid := cmd.Process.Pid
	deadline := time.Now().Add(2 * time.Minute)
	for !logged(l.LogDir, "sleeping until the next cycle") {
		if time.Now().After(deadline) {
			return cpuUse{}, fmt.Errorf("fwagent run did not finish its first cycle in 2 minutes:\n%s", buf.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Let the first cycle's goroutines and connections wind down.
	time.Sleep(time.Second)
	a, err := readCPU(pid)
	if err != nil {
		return cpuUse{}, err
	}
	time.Sleep(d)
	b, err := readCPU(pid)
	if err != nil {
		return cpuUse{}, err
	}
	return cpuUse{sched: b.sched - a.sched, ticks: b.ticks - a.ticks, first: a.sched}, nil
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

// readCPU reads a process's CPU time from /proc.
func readCPU(pid int) (cpuUse, error) {
	var c cpuUse
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return c, err
	}
	// Fields after the command name (which may contain spaces).
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return c, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	stt, _ := strconv.ParseInt(f[12], 10, 64)
	c.ticks = time.Duration(ut+stt) * 10 * time.Millisecond // USER_HZ is 100 on Linux
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	for _, t := range tasks {
		s, err := os.ReadFile(t)
		if err != nil {
			continue // a thread that ended
		}
		if fs := strings.Fields(string(s)); len(fs) > 0 {
			ns, _ := strconv.ParseInt(fs[0], 10, 64)
			c.sched += time.Duration(ns)
		}
	}
	return c, nil
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if err != nil || len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ") + fmt.Sprintf(" (on %d cores)", runtime.NumCPU())
}

// countingProxy forwards TCP connections to a backend and counts the bytes
// each way.
type countingProxy struct {
	ln       net.Listener
	backend  string
	up, down atomic.Int64 // client->server, server->client
}

func newCountingProxy(backend string) (*countingProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &countingProxy{ln: ln, backend: backend}
	go p.serve()
	return p, nil
}

func (p *countingProxy) Addr() string { return p.ln.Addr().String() }

func (p *countingProxy) Reset() { p.up.Store(0); p.down.Store(0) }

func (p *countingProxy) Close() { _ = p.ln.Close() }

func (p *countingProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func (p *countingProxy) handle(c net.Conn) {
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var d net.Dialer
	b, err := d.DialContext(ctx, "tcp", p.backend)
	if err != nil {
		return
	}
	defer b.Close()
	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(counter{b, &p.up}, c)
		_ = b.(*net.TCPConn).CloseWrite()
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(counter{c, &p.down}, b)
		_ = c.(*net.TCPConn).CloseWrite()
		done <- struct{}{}
	}()
	<-done
	<-done
}

// counter counts the bytes written through it as they pass.
type counter struct {
	w io.Writer
	n *atomic.Int64
}

func (c counter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n.Add(int64(n))
	return n, err
}
