// Command fleet is the fleet server's load generator: it starts
// `fwctl fleet serve` as a child process on loopback over SQLite and over a
// throwaway PostgreSQL, simulates up to -devices agents (each with its own
// Ed25519 key) checking in with signed check-ins, and prints check-ins per
// second sustained, latency percentiles, the time of `fleet devices
// --state failed` over the whole fleet, the server's peak RSS, and the time
// from a pause to the last simulated agent holding.
//
// It is bounded: -devices check-ins per phase and -max-time per phase, to
// 127.0.0.1 only. It prints figures and asserts nothing.
//
//	go run ./bench/fleet -devices 100000
//	go run ./bench/fleet -devices 20000 -db sqlite
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fwagent/fwagent/agent/report"
	"github.com/fwagent/fwagent/fleet"
	"github.com/fwagent/fwagent/internal/pgtest"
	"github.com/fwagent/fwagent/reports"
)

const token = "bench-admin-token-0123456789abcdef"

func main() {
	var (
		devices     = flag.Int("devices", 100000, "simulated agents (at most 100000)")
		concurrency = flag.Int("concurrency", 64, "concurrent connections")
		maxTime     = flag.Duration("max-time", 90*time.Second, "bound of each phase")
		dbs         = flag.String("db", "sqlite,postgres", "stores to measure: sqlite, postgres or both")
		failedShare = flag.Float64("failed", 0.1, "share of devices that report a failed install")
		pgbenchTime = flag.Duration("pgbench", 15*time.Second, "run pgbench (TPC-B, 8 clients) this long on the same cluster for a ratio (0: skip)")
	)
	flag.Parse()
	if *devices < 1 || *devices > 100000 {
		fmt.Fprintln(os.Stderr, "-devices must be 1 to 100000")
		os.Exit(2)
	}
	if err := run(*devices, *concurrency, *maxTime, strings.Split(*dbs, ","), *failedShare, *pgbenchTime); err != nil {
		fmt.Fprintln(os.Stderr, "bench/fleet:", err)
		os.Exit(1)
	}
}

func run(n, conc int, maxTime time.Duration, dbs []string, failedShare float64, pgbenchTime time.Duration) error {
	dir, err := os.MkdirTemp("", "fleet-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "fwctl")
	build := exec.Command("go", "build", "-o", bin, "./cmd/fwctl")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build fwctl (run from the repository root): %w", err)
	}
	tokenFile := filepath.Join(dir, "admin.token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		return err
	}
	fmt.Printf("machine: %d CPUs, %s/%s; %d devices, %d connections, phases bounded to %s\n", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, n, conc, maxTime)
	fmt.Printf("load before: %s", loadavg())
	start := time.Now()
	keys := make([]*fleet.DeviceKey, n)
	for i := range keys {
		_, priv, _ := ed25519.GenerateKey(nil)
		keys[i] = fleet.NewDeviceKey(priv)
	}
	fmt.Printf("generated %d device keys in %s\n", n, time.Since(start).Round(time.Millisecond))
	for _, db := range dbs {
		var (
			url     string
			cluster *pgtest.Cluster
		)
		switch strings.TrimSpace(db) {
		case "sqlite":
			url = filepath.Join(dir, "fleet.db")
		case "postgres":
			c, err := pgtest.Start(context.Background(), pgtest.Options{Durable: true, MaxConnections: 200})
			if err != nil {
				return err
			}
			defer c.Stop()
			if url, err = c.NewDatabase(context.Background()); err != nil {
				return err
			}
			cluster = c
		default:
			return fmt.Errorf("-db %q: want sqlite or postgres", db)
		}
		fmt.Printf("\n== %s (durable: fsync on)\n", db)
		rates, err := measure(bin, tokenFile, url, keys, conc, maxTime, failedShare)
		if err != nil {
			return err
		}
		if cluster != nil && pgbenchTime > 0 {
			tps, err := pgbench(cluster, pgbenchTime)
			if err != nil {
				return err
			}
			fmt.Printf("pgbench (TPC-B, scale 10, 8 clients, %s) on the same cluster: %.0f transactions/s; check-ins per second / pgbench transactions per second: enrolment %.2f, updates %.2f\n",
				pgbenchTime, tps, rates[0]/tps, rates[1]/tps)
		}
	}
	fmt.Printf("\nload after: %s", loadavg())
	return nil
}

type serverProc struct {
	url string
	cmd *exec.Cmd
	log string // the server's log (stderr)
}

// lastLog returns the last line of the server's log holding msg.
func (p *serverProc) lastLog(msg string) string {
	b, _ := os.ReadFile(p.log)
	last := ""
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, msg) {
			last = l
		}
	}
	return last
}

func startServer(bin, tokenFile, db string) (*serverProc, error) {
	// Auto-pause on, at a limit the bench's 10% of failures stays under:
	// its checks run during the report phase as they would in a rollout.
	cmd := exec.Command(bin, "fleet", "serve", "--listen", "127.0.0.1:0", "--db", db, "--enrolment", "open", "--admin-token-file", tokenFile,
		"--max-failure-rate", "20%", "--min-installs", "10")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	logf, err := os.CreateTemp(filepath.Dir(tokenFile), "serve-*.log")
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("fwctl fleet serve did not start: %w", err)
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	return &serverProc{url: strings.TrimSpace(strings.TrimPrefix(line, "fleet server at ")), cmd: cmd, log: logf.Name()}, nil
}

func (p *serverProc) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	_ = p.cmd.Wait()
}

// rss reads the server's current and peak resident set (KiB).
func (p *serverProc) rss() (cur, peak int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		var v int64
		if _, err := fmt.Sscanf(l, "VmRSS: %d kB", &v); err == nil {
			cur = v
		}
		if _, err := fmt.Sscanf(l, "VmHWM: %d kB", &v); err == nil {
			peak = v
		}
	}
	return cur, peak
}

// measure runs the phases against one store and returns the check-ins per
// second of enrolment and of updates.
func measure(bin, tokenFile, db string, keys []*fleet.DeviceKey, conc int, maxTime time.Duration, failedShare float64) ([2]float64, error) {
	var rates [2]float64
	srv, err := startServer(bin, tokenFile, db)
	if err != nil {
		return rates, err
	}
	defer srv.stop()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc}, Timeout: 60 * time.Second}
	n := len(keys)
	failedEvery := 0
	if failedShare > 0 {
		failedEvery = int(1 / failedShare)
	}
	phase := func(name string, mutate func(i int, c *fleet.CheckIn)) float64 {
		// Sign before timing: the figure is the server's, not the
		// simulator's signing speed.
		bodies := make([][]byte, n)
		parallel(n, func(i int) {
			c := fleet.CheckIn{Serial: fmt.Sprintf("NVR-%06d", i), Model: "iDS-9632NXI-I8/16S", Firmware: "V4.1.24", Site: fmt.Sprintf("site-%03d", i/100),
				DeviceName: fmt.Sprintf("rec-%d", i%100), AgentVersion: "1.0", IntervalSeconds: 60, QueueDepth: 0}
			mutate(i, &c)
			env, _, err := keys[i].SignCheckIn(c)
			if err != nil {
				panic(err)
			}
			bodies[i] = env.Marshal()
		})
		before := sampleCPU(srv.cmd.Process.Pid)
		res := load(hc, srv.url+fleet.CheckInPath, bodies, conc, maxTime, nil)
		used := sampleCPU(srv.cmd.Process.Pid).since(before)
		cur, peak := srv.rss()
		fmt.Printf("%-28s %6d check-ins in %6.2fs: %7.0f/s sustained; latency p50 %s p99 %s max %s; %d errors; server RSS %d MiB (peak %d MiB)\n",
			name, res.ok, res.elapsed.Seconds(), float64(res.ok)/res.elapsed.Seconds(), res.p(0.50), res.p(0.99), res.p(1), res.errors, cur/1024, peak/1024)
		fmt.Printf("  %s\n", used.per(res.ok, strings.HasPrefix(db, "postgres")))
		rate := float64(res.ok) / res.elapsed.Seconds()
		fmt.Printf("  against the fleet issue's targets: %.2fx the 3,000 check-ins/s, p99 %.2fx the 100 ms limit, peak RSS %.2fx the 256 MiB limit\n",
			rate/3000, float64(res.p(0.99))/float64(100*time.Millisecond), float64(peak)/(256*1024))
		if res.firstErr != nil {
			fmt.Printf("  first error: %v\n", res.firstErr)
		}
		return rate
	}
	rates[0] = phase("enrolment (new devices)", func(int, *fleet.CheckIn) {})
	rates[1] = phase("steady state (updates)", func(i int, c *fleet.CheckIn) {
		if failedEvery > 0 && i%failedEvery == 0 {
			c.LastResult, c.LastCode, c.LastReleaseID = fleet.ResultFailed, "badFlash", "r1"
		} else {
			c.Step, c.ReleaseID, c.Progress = "download", "r1", 50
		}
	})

	// fwctl fleet devices --state failed over the whole fleet (the
	// devices that checked in within the time bounds).
	var counts struct {
		States map[string]int `json:"states"`
	}
	if err := admin(hc, "GET", srv.url+"/v1/admin/counters", nil, &counts); err != nil {
		return rates, err
	}
	n = 0
	for _, c := range counts.States {
		n += c
	}
	// The command itself, as an operator runs it: process start, the
	// query, the transfer and the table printed (to a pipe).
	for i := 0; i < 3; i++ {
		t := time.Now()
		out, err := exec.Command(bin, "fleet", "devices", "--state", "failed", "--server", srv.url, "--admin-token-file", tokenFile).Output()
		if err != nil {
			return rates, fmt.Errorf("fwctl fleet devices: %w", err)
		}
		took := time.Since(t)
		fmt.Printf("fwctl fleet devices --state failed over %d devices: %d listed in %s (%.2fx the 1 s limit)\n", n, bytes.Count(out, []byte("\n"))-1, took.Round(time.Millisecond), took.Seconds())
	}

	// Pause: every check-in after it carries the hold. Agents check in
	// every minute, spread evenly: on a simulated clock the last one checks
	// in just under a minute after the pause; the run below sends them all
	// (each signed at its simulated time) and checks the hold is in each.
	pauseAt := time.Now()
	if err := admin(hc, "POST", srv.url+"/v1/admin/releases/r1/pause", strings.NewReader(`{"cause":"bench"}`), nil); err != nil {
		return rates, err
	}
	bodies := make([][]byte, len(keys))
	parallel(len(keys), func(i int) {
		env, _, _ := keys[i].SignCheckIn(fleet.CheckIn{Serial: fmt.Sprintf("NVR-%06d", i), Model: "iDS-9632NXI-I8/16S", AgentVersion: "1.0", IntervalSeconds: 60})
		bodies[i] = env.Marshal()
	})
	var notHeld atomic.Int64
	res := load(hc, srv.url+fleet.CheckInPath, bodies, conc, maxTime, func(body []byte) {
		var r fleet.CheckInReply
		if json.Unmarshal(body, &r) != nil {
			notHeld.Add(1)
			return
		}
		if _, ok := r.Held("r1"); !ok {
			notHeld.Add(1)
		}
	})
	lastOffset := time.Duration(len(keys)-1) * time.Minute / time.Duration(len(keys))
	fmt.Printf("pause -> last agent holding: %s on the simulated clock (checkin_interval 1m, agents spread evenly; + at most the server's 1 s hold cache); %d of %d check-ins after the pause held, %d did not; the round took %s of real time (%s after the pause)\n",
		(lastOffset + res.p(1)).Round(time.Millisecond), int64(res.ok)-notHeld.Load(), res.ok, notHeld.Load(), res.elapsed.Round(time.Millisecond), time.Since(pauseAt).Round(time.Millisecond))

	// Last: the auto-pause checks it sets off read every report, and
	// would run under the figures above.
	return rates, reportPhase(hc, srv, strings.HasPrefix(db, "postgres"), keys, conc, maxTime, failedEvery)
}

// reportPhase posts one signed report of a finished install per device
// (one in failedEvery failed) with the server's auto-pause checks running,
// then times reading and counting every report of the release: what an
// auto-pause check and fwctl rollout status do.
func reportPhase(hc *http.Client, srv *serverProc, postgres bool, keys []*fleet.DeviceKey, conc int, maxTime time.Duration, failedEvery int) error {
	const release = "r2"
	bodies := make([][]byte, len(keys))
	parallel(len(keys), func(i int) {
		r := fleet.Report{Report: report.Report{ID: fmt.Sprintf("rep-%06d", i), DeviceSerial: fmt.Sprintf("NVR-%06d", i), Model: "iDS-9632NXI-I8/16S",
			ReleaseID: release, Version: "V4.1.25", Step: "confirm", Progress: 100, Result: fleet.ResultInstalled, AgentVersion: "1.0"}}
		if failedEvery > 0 && i%failedEvery == 0 {
			r.Result, r.Codes = fleet.ResultFailed, []string{"badFlash"}
		}
		env, _, err := keys[i].SignReport(r)
		if err != nil {
			panic(err)
		}
		bodies[i] = env.Marshal()
	})
	before := sampleCPU(srv.cmd.Process.Pid)
	res := load(hc, srv.url+fleet.ReportPath, bodies, conc, maxTime, nil)
	used := sampleCPU(srv.cmd.Process.Pid).since(before)
	fmt.Printf("%-28s %6d reports in %6.2fs: %7.0f/s sustained; latency p50 %s p99 %s max %s; %d errors\n",
		"reports (auto-pause on)", res.ok, res.elapsed.Seconds(), float64(res.ok)/res.elapsed.Seconds(), res.p(0.50), res.p(0.99), res.p(1), res.errors)
	fmt.Printf("  %s\n", strings.Replace(used.per(res.ok, postgres), "check-ins", "reports", 1))
	if res.firstErr != nil {
		fmt.Printf("  first error: %v\n", res.firstErr)
	}
	t := time.Now()
	req, _ := http.NewRequest("GET", srv.url+"/v1/admin/releases/"+release+"/reports", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := reports.ParseReports(resp.Body)
	if err != nil {
		return err
	}
	sum := reports.Summarize(f.Records, release, nil, time.Now())
	fmt.Printf("fwctl rollout status's read and count of every report of the release (over HTTP): %d reports, %d devices, %d failed, in %s\n",
		len(f.Records), sum.Total.Devices, sum.Total.Failed, time.Since(t).Round(time.Millisecond))
	fmt.Printf("the server's last auto-pause check (from its log): %s\n", srv.lastLog(`msg="auto-pause check"`))
	return nil
}

type result struct {
	ok, errors int
	elapsed    time.Duration
	lat        []time.Duration
	firstErr   error
}

func (r *result) p(q float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(q * float64(len(r.lat)-1))
	return r.lat[i].Round(100 * time.Microsecond)
}

// load posts every body once with conc workers, bounded by maxTime.
func load(hc *http.Client, url string, bodies [][]byte, conc int, maxTime time.Duration, check func([]byte)) *result {
	var (
		next     atomic.Int64
		mu       sync.Mutex
		res      = &result{}
		wg       sync.WaitGroup
		deadline = time.Now().Add(maxTime)
	)
	start := time.Now()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, len(bodies)/conc+1)
			ok, bad := 0, 0
			var firstErr error
			for {
				i := int(next.Add(1)) - 1
				if i >= len(bodies) || time.Now().After(deadline) {
					break
				}
				t := time.Now()
				resp, err := hc.Post(url, "application/json", bytes.NewReader(bodies[i]))
				if err == nil {
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode/100 != 2 {
						err = fmt.Errorf("%d %s", resp.StatusCode, body)
					} else if check != nil {
						check(body)
					}
				}
				if err != nil {
					bad++
					if firstErr == nil {
						firstErr = err
					}
					continue
				}
				lat = append(lat, time.Since(t))
				ok++
			}
			mu.Lock()
			res.ok += ok
			res.errors += bad
			res.lat = append(res.lat, lat...)
			if res.firstErr == nil {
				res.firstErr = firstErr
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	sort.Slice(res.lat, func(i, j int) bool { return res.lat[i] < res.lat[j] })
	return res
}

func admin(hc *http.Client, method, url string, body io.Reader, out any) error {
	req, _ := http.NewRequest(method, url, body)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return errors.New(resp.Status + ": " + string(b))
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func parallel(n int, f func(i int)) {
	var wg sync.WaitGroup
	w := runtime.NumCPU()
	for k := 0; k < w; k++ {
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			for i := k; i < n; i += w {
				f(i)
			}
		}(k)
	}
	wg.Wait()
}

// pgbench initialises a TPC-B database (scale 10) on c and runs pgbench
// with 8 clients for d: the same cluster's transactions per second, the
// figure the fleet issue compares with.
func pgbench(c *pgtest.Cluster, d time.Duration) (float64, error) {
	ctx := context.Background()
	url, err := c.NewDatabase(ctx)
	if err != nil {
		return 0, err
	}
	db := url[strings.LastIndexByte(url, '/')+1 : strings.IndexByte(url, '?')]
	conn := []string{"-h", "127.0.0.1", "-p", fmt.Sprint(c.Port), "-U", "postgres"}
	if out, err := c.Run(ctx, "pgbench", append(append([]string{"-i", "-q", "-s", "10"}, conn...), db)...); err != nil {
		return 0, fmt.Errorf("pgbench -i: %w\n%s", err, out)
	}
	out, err := c.Run(ctx, "pgbench", append(append([]string{"-c", "8", "-j", "2", "-T", fmt.Sprint(int(d.Seconds()))}, conn...), db)...)
	if err != nil {
		return 0, fmt.Errorf("pgbench: %w\n%s", err, out)
	}
	for _, l := range strings.Split(out, "\n") {
		var tps float64
		if _, err := fmt.Sscanf(l, "tps = %f", &tps); err == nil {
			return tps, nil
		}
	}
	return 0, fmt.Errorf("pgbench printed no tps:\n%s", out)
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown\n"
	}
	return string(b)
}

// cpuSample is the CPU time (clock ticks) used so far by the load
// generator, the server and PostgreSQL's processes, and the machine's idle
// time: where the two cores go during a phase.
type cpuSample struct{ self, server, postgres, idle, total int64 }

// clkTck is USER_HZ, 100 on Linux.
const clkTck = 100

func sampleCPU(server int) cpuSample {
	s := cpuSample{self: procTicks("self"), server: procTicks(fmt.Sprint(server))}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		if b, err := os.ReadFile("/proc/" + e.Name() + "/comm"); err == nil && strings.TrimSpace(string(b)) == "postgres" {
			s.postgres += procTicks(e.Name())
		}
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
		for i, v := range f[1:] {
			var n int64
			fmt.Sscan(v, &n)
			s.total += n
			if i == 3 || i == 4 { // idle, iowait
				s.idle += n
			}
		}
	}
	return s
}

// procTicks is utime+stime of /proc/PID/stat.
func procTicks(pid string) int64 {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	var u, k int64
	fmt.Sscan(f[11], &u)
	fmt.Sscan(f[12], &k)
	return u + k
}

func (a cpuSample) since(b cpuSample) cpuSample {
	return cpuSample{a.self - b.self, a.server - b.server, a.postgres - b.postgres, a.idle - b.idle, a.total - b.total}
}

// per prints the CPU spent per 1,000 check-ins by each process.
func (c cpuSample) per(n int, postgres bool) string {
	if n == 0 || c.total == 0 {
		return "cpu: no check-ins"
	}
	ms := func(t int64) float64 { return float64(t) * 1000 / clkTck / float64(n) * 1000 }
	pg := ""
	if postgres {
		pg = fmt.Sprintf(", PostgreSQL %.0f ms", ms(c.postgres))
	}
	return fmt.Sprintf("cpu per 1,000 check-ins: load generator %.0f ms, server %.0f ms%s; machine idle %.0f%%",
		ms(c.self), ms(c.server), pg, float64(c.idle)*100/float64(c.total))
}
