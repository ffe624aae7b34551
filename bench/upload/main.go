// Command upload measures the peak memory of a process that uploads a large
// image through the ISAPI backend (device/isapi) to the NVR simulator. The
// parent process writes the image and runs the simulator; a child process
// does nothing but the upload, so its peak resident set size (getrusage's
// ru_maxrss, cross-checked with VmHWM from /proc/self/status) is the
// backend's cost. Run it through bench/upload.sh.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fwagent/fwagent/device"
	"github.com/fwagent/fwagent/device/isapi"
	"github.com/fwagent/fwagent/internal/nvrsim"
	"github.com/fwagent/fwagent/internal/testimage"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "upload bench:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("upload", flag.ContinueOnError)
	size := fs.Int64("size", 1<<30, "image size in bytes")
	style := fs.String("style", "put", "upload style: put, or post (the simulator refuses PUT first)")
	dir := fs.String("dir", "", "directory for the image and the simulator's upload (default: a new temporary directory)")
	child := fs.Bool("child", false, "internal: be the uploading process")
	url := fs.String("url", "", "internal: simulator URL")
	image := fs.String("image", "", "internal: image path")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *child {
		return upload(*url, *image, stdout)
	}

	if *dir == "" {
		d, err := os.MkdirTemp("", "fwagent-upload-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	path := filepath.Join(*dir, "digicap.dav")
	start := time.Now()
	n, _, err := testimage.WriteFile(path, testimage.Spec{Model: nvrsim.ProtectedModel, Version: nvrsim.ProtectedVersion, Variant: "custom", Size: *size})
	if err != nil {
		return err
	}
	defer os.Remove(path)
	fmt.Fprintf(stdout, "image: %d MiB written in %.1fs\n", n>>20, time.Since(start).Seconds())

	srv, err := nvrsim.Start(nvrsim.Config{TempDir: *dir})
	if err != nil {
		return err
	}
	defer srv.Close()
	if *style == "post" {
		srv.SetFaults(nvrsim.Faults{PutNotSupported: true})
	}

	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, "-child", "-url", srv.URL(), "-image", path)
	cmd.Stdout, cmd.Stderr = stdout, os.Stderr
	start = time.Now()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("uploading child: %w", err)
	}
	secs := time.Since(start).Seconds()
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return fmt.Errorf("no rusage on this platform")
	}
	peak := ru.Maxrss * 1024 // kilobytes on Linux
	st := srv.State()
	if st.LastUpload == nil || st.LastUpload.Bytes != n || st.Installs != 1 {
		return fmt.Errorf("the simulator did not get the whole image: %+v", st.LastUpload)
	}
	fmt.Fprintf(stdout, "upload (%s): %d MiB in %.1fs (%.0f MiB/s)\n", st.LastUpload.Method, n>>20, secs, float64(n>>20)/secs)
	fmt.Fprintf(stdout, "peak RSS of the uploading process: %.1f MiB (target < 64 MiB); image/peak = %.0fx\n",
		float64(peak)/(1<<20), float64(n)/float64(peak))
	if peak >= 64<<20 {
		fmt.Fprintln(stdout, "OVER TARGET")
	}
	return nil
}

// loopbackURL refuses any URL but the simulator's on this machine: the
// child uploads without the policy, so it must never reach a recorder.
func loopbackURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("simulator URL %q: %w", raw, err)
	}
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("refusing to upload to %q: the upload bench talks only to the simulator it starts on a loopback address (it bypasses the safety policy)", raw)
	}
	return nil
}

// upload is the child: one Install through the ISAPI backend, to the
// loopback simulator only.
func upload(rawURL, image string, stdout io.Writer) error {
	if err := loopbackURL(rawURL); err != nil {
		return err
	}
	c, err := isapi.New(isapi.Config{
		BaseURL: rawURL, Username: "admin", Password: "admin12345",
		PollInterval: 10 * time.Millisecond, UploadTimeout: time.Hour,
		RequestTimeout: 30 * time.Second, FlashTimeout: time.Hour, RebootTimeout: time.Hour,
	})
	if err != nil {
		return err
	}
	var last device.InstallProgress
	err = c.Install(context.Background(), image, func(p device.InstallProgress) {
		if p.Phase == "upload" {
			last = p
		}
	})
	if err != nil {
		return err
	}
	if last.Done != last.Total {
		return fmt.Errorf("upload progress ended at %d of %d", last.Done, last.Total)
	}
	fmt.Fprintf(stdout, "child VmHWM: %s\n", vmHWM())
	return nil
}

func vmHWM() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(v)
			if len(f) == 2 {
				if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return fmt.Sprintf("%.1f MiB", float64(kb)/1024)
				}
			}
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
