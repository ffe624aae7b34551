// Command download measures fwagent's image download against a plain HTTP
// download of the same file, in the same run, from a loopback server, and the
// cost of polling an unchanged manifest (one conditional request).
//
// Usage: go run ./bench/download [-size 1073741824] [-runs 3] [-dir DIR]
// (bench/download.sh runs it with the defaults).
//
// With -get URL it instead does one download the way the agent does (the
// agent's Downloader, client and one-pass verification, the final fsync of
// the file and its folder) and exits: bench/curl.sh times that as a whole
// process against curl from nginx.
//
//	download -get URL -sha256 HEX -size BYTES -out PATH
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fwagent/fwagent/agent/fetch"
	"github.com/fwagent/fwagent/internal/testimage"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench/download:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("download", flag.ContinueOnError)
	size := fs.Int64("size", 1<<30, "image size in bytes")
	runs := fs.Int("runs", 3, "runs of each kind (alternated); the median is reported")
	dir := fs.String("dir", "", "work directory (default: a new temporary directory, removed at the end)")
	get := fs.String("get", "", "download this URL once, as the agent does, to -out and exit")
	digest := fs.String("sha256", "", "with -get: the image's declared SHA-256")
	outPath := fs.String("out", "", "with -get: the destination file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *get != "" {
		return getOnce(*get, *outPath, *size, *digest, out)
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "fwagent-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	src := filepath.Join(*dir, "served.dav")
	fmt.Fprintf(out, "building a %d byte digicap test image...\n", *size)
	n, sum, err := testimage.WriteFile(src, testimage.Spec{Size: *size})
	if err != nil {
		return err
	}

	// The image server is a plain one (sendfile); the manifest server counts
	// the bytes on the wire.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler(src)}
	go srv.Serve(ln)
	defer srv.Close()
	base := "http://" + ln.Addr().String()
	mln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	counted := &countingListener{Listener: mln}
	msrv := &http.Server{Handler: handler(src)}
	go msrv.Serve(counted)
	defer msrv.Close()
	mbase := "http://" + mln.Addr().String()

	dst := filepath.Join(*dir, "downloaded.dav")
	var plain, plainBig, agent []time.Duration
	var plainCPU, plainBigCPU, agentCPU []time.Duration
	var facts string
	for i := 0; i < *runs; i++ {
		// Start each timed run with no dirty pages left by the previous one.
		os.Remove(dst)
		syscall.Sync()
		c0 := cpuTime()
		d, err := plainDownload(base+"/image.dav", dst, n)
		if err != nil {
			return fmt.Errorf("plain download: %w", err)
		}
		plain = append(plain, d)
		plainCPU = append(plainCPU, cpuTime()-c0)

		os.Remove(dst)
		syscall.Sync()
		c0 = cpuTime()
		d, err = plainDownloadBuffer(base+"/image.dav", dst, n, fetch.DefaultBufferSize)
		if err != nil {
			return fmt.Errorf("plain download: %w", err)
		}
		plainBig = append(plainBig, d)
		plainBigCPU = append(plainBigCPU, cpuTime()-c0)

		os.Remove(dst)
		syscall.Sync()
		c0 = cpuTime()
		start := time.Now()
		dl := &fetch.Downloader{Client: fetch.NewHTTPClient(fetch.ClientOptions{}).StandardClient()}
		res, err := dl.Download(context.Background(), fetch.Request{URLs: []string{base + "/image.dav"}, Path: dst, Size: n, SHA256: sum})
		if err != nil {
			return fmt.Errorf("fwagent download: %w", err)
		}
		agent = append(agent, time.Since(start))
		agentCPU = append(agentCPU, cpuTime()-c0)
		facts = fmt.Sprintf("size %d, sha256 %s..., digicap valid: %v", res.Facts.Size, res.Facts.SHA256[:16], res.Facts.Digicap != nil)
	}
	os.Remove(dst)
	mib := float64(n) / (1 << 20)
	fmt.Fprintf(out, "\nimage: %d bytes (%.0f MiB), %s\n", n, mib, facts)
	fmt.Fprintf(out, "load average at the end: %s\n", loadavg())
	line := func(name string, ds, cpu []time.Duration) {
		fmt.Fprintf(out, "%-44s best %-8v median %-8v (%4.0f MiB/s best)  process CPU median %v  runs %v\n",
			name, minimum(ds).Round(time.Millisecond), median(ds).Round(time.Millisecond), mib/minimum(ds).Seconds(),
			median(cpu).Round(time.Millisecond), rounded(ds))
	}
	line("plain HTTP download to disk (io.Copy):", plain, plainCPU)
	line(fmt.Sprintf("plain HTTP download, same %d KiB buffer:", fetch.DefaultBufferSize>>10), plainBig, plainBigCPU)
	line("fwagent download + SHA-256 + digicap check:", agent, agentCPU)
	ratio := func(a, b []time.Duration) string {
		return fmt.Sprintf("best %.3fx, median %.3fx", minimum(a).Seconds()/minimum(b).Seconds(), median(a).Seconds()/median(b).Seconds())
	}
	fmt.Fprintf(out, "ratio fwagent/plain io.Copy:      %s (target <= 1.15x)\n", ratio(agent, plain))
	fmt.Fprintf(out, "ratio fwagent/plain same buffer:  %s\n", ratio(agent, plainBig))
	fmt.Fprintf(out, "process CPU fwagent/plain io.Copy: %.3fx (server included; robust to other load)\n", median(agentCPU).Seconds()/median(plainCPU).Seconds())

	// An unchanged manifest: one conditional request answered 304.
	f := &fetch.Fetcher{HTTP: fetch.NewHTTPClient(fetch.ClientOptions{Timeout: fetch.DefaultTimeout})}
	first, err := f.Fetch(context.Background(), []string{mbase + "/manifest.json"}, fetch.Conditional{})
	if err != nil {
		return err
	}
	counted.reset()
	reqsBefore := manifestRequests.Load()
	start := time.Now()
	res, err := f.Fetch(context.Background(), []string{mbase + "/manifest.json"}, fetch.Conditional{ETag: first.ETag, LastModified: first.LastModified})
	took := time.Since(start)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nunchanged-manifest poll: not modified %v, %d request(s), %d bytes sent + %d bytes received on the wire, body %d bytes, %v\n",
		res.NotModified, manifestRequests.Load()-reqsBefore, counted.read.Load(), counted.written.Load(), len(res.Body), took.Round(time.Microsecond))

	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		fmt.Fprintf(out, "bench process peak RSS (server + both clients): %d MiB\n", ru.Maxrss/1024)
	}
	return nil
}

// getOnce downloads url to path with the Downloader configured as the agent
// wires it (agent/wire.go: a client that never retries, the Downloader
// owning retries), verifying while writing, and reports what it proved.
func getOnce(url, path string, size int64, sum string, out io.Writer) error {
	if path == "" || sum == "" {
		return fmt.Errorf("-get needs -out and -sha256 (and -size)")
	}
	dl := &fetch.Downloader{
		Client:   fetch.NewHTTPClient(fetch.ClientOptions{RetryMax: 0}).StandardClient(),
		RetryMax: 2,
	}
	res, err := dl.Download(context.Background(), fetch.Request{URLs: []string{url}, Path: path, Size: size, SHA256: sum})
	if err != nil {
		return err
	}
	if res.Facts.Digicap == nil {
		return fmt.Errorf("downloaded %s but it is not a valid digicap image", path)
	}
	fmt.Fprintf(out, "proved %s: %d bytes, sha256 %s, digicap valid, synced\n", path, res.Facts.Size, res.Facts.SHA256)
	return nil
}

var manifestRequests atomic.Int64

// handler serves the image (with ranges) and a 64 KiB manifest with an ETag.
func handler(image string) http.Handler {
	manifest := make([]byte, 64<<10)
	mux := http.NewServeMux()
	mux.HandleFunc("/image.dav", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, image)
	})
	mux.HandleFunc("/manifest.json", func(w http.ResponseWriter, r *http.Request) {
		manifestRequests.Add(1)
		w.Header().Set("ETag", `"serial-42"`)
		if r.Header.Get("If-None-Match") == `"serial-42"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Write(manifest)
	})
	return mux
}

// plainDownload is the baseline: GET and io.Copy into a file.
func plainDownload(url, dst string, size int64) (time.Duration, error) {
	start := time.Now()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	f, err := os.Create(dst)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != size {
		err = fmt.Errorf("got %d bytes, want %d", n, size)
	}
	return time.Since(start), err
}

// plainDownloadBuffer is the baseline with fwagent's copy buffer size.
func plainDownloadBuffer(url, dst string, size int64, bufSize int) (time.Duration, error) {
	start := time.Now()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	f, err := os.Create(dst)
	if err != nil {
		return 0, err
	}
	// Hide ReadFrom so io.CopyBuffer really uses the buffer.
	n, err := io.CopyBuffer(struct{ io.Writer }{f}, resp.Body, make([]byte, bufSize))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != size {
		err = fmt.Errorf("got %d bytes, want %d", n, size)
	}
	return time.Since(start), err
}

func minimum(ds []time.Duration) time.Duration {
	m := ds[0]
	for _, d := range ds[1:] {
		m = min(m, d)
	}
	return m
}

// cpuTime is the process's user + system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if err != nil || len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ") + fmt.Sprintf(" (on %d cores)", runtime.NumCPU())
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func rounded(ds []time.Duration) []time.Duration {
	r := make([]time.Duration, len(ds))
	for i, d := range ds {
		r[i] = d.Round(time.Millisecond)
	}
	return r
}

// countingListener counts the bytes read from and written to its connections.
type countingListener struct {
	net.Listener
	read, written atomic.Int64
}

func (l *countingListener) reset() { l.read.Store(0); l.written.Store(0) }

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, l: l}, nil
}

type countingConn struct {
	net.Conn
	l *countingListener
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.l.read.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.l.written.Add(int64(n))
	return n, err
}
