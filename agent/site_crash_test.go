package agent_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/fwagent/fwagent/agent"
	"github.com/fwagent/fwagent/agent/audit"
	"github.com/fwagent/fwagent/agent/backend"
	"github.com/fwagent/fwagent/agent/config"
	"github.com/fwagent/fwagent/agent/journal"
	"github.com/fwagent/fwagent/device"
	"github.com/fwagent/fwagent/internal/lab"
	"github.com/fwagent/fwagent/internal/nvrsim"
)

// The site crash test re-executes this test binary as a site gateway: with
// FWAGENT_SITE_CHILD=1 it runs one `update --now` site cycle against the
// config in FWAGENT_CRASH_CONFIG and prints "RESULT <device> <result>" per
// recorder. FWAGENT_CRASH_AT=<recorder index>:<point> makes that recorder
// print "AT ..." and hang at the point while the others go on; the parent
// then kills the whole process with SIGKILL.
const envSiteChild = "FWAGENT_SITE_CHILD"

func siteCrashChild() int {
	cfg, err := config.Load(os.Getenv(envConfig))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	log := logrus.New()
	log.Out = io.Discard
	s, err := agent.NewSite(cfg, agent.Options{Backend: backend.New, Version: "crash-child", Log: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer s.Close()
	hang := func(at string) {
		fmt.Printf("AT %s\n", at)
		select {} // until SIGKILL
	}
	if at := os.Getenv(envAt); at != "" {
		idx, point, _ := strings.Cut(at, ":")
		i, _ := strconv.Atoi(idx)
		a := s.Agents[i]
		switch point {
		case "download_half":
			a.Downloader.Progress = func(done, total int64) {
				if done >= total/2 {
					hang(at)
				}
			}
		case "upload_half":
			a.InstallProgress = func(p device.InstallProgress) {
				if p.Phase == "upload" && p.Done >= p.Total/2 {
					hang(at)
				}
			}
		default:
			agent.SetBeforeStep(a, func(step journal.Step) error {
				if string(step) == point {
					hang(at)
				}
				return nil
			})
		}
	}
	for _, o := range s.Cycle(context.Background(), agent.ModeUpdateNow, nil) {
		fmt.Printf("RESULT %s %s %v\n", o.Device, o.Result, o.Codes)
	}
	fmt.Println("DONE")
	return 0
}

func startSiteChild(t *testing.T, configPath, at string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envSiteChild+"=1", envConfig+"="+configPath, envAt+"="+at)
	c := &child{cmd: cmd, lines: make(chan string, 64)}
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(c.lines)
		buf := make([]byte, 0, 4096)
		tmp := make([]byte, 1024)
		for {
			n, err := stdout.Read(tmp)
			buf = append(buf, tmp[:n]...)
			for {
				i := strings.IndexByte(string(buf), '\n')
				if i < 0 {
					break
				}
				c.lines <- string(buf[:i])
				buf = buf[i+1:]
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return c
}

// TestASiteKilledAtRandomPointsFlashesEveryRecorderOnce runs a 5-recorder
// site update as a subprocess, kills it with SIGKILL at seeded random
// points (a recorder and a step; the other recorders are wherever their
// own work has taken them), restarts it, and checks that every recorder
// ends on 4.1.25 flashed exactly once with the proven image, each journal
// finished and each audit trail intact.
func TestASiteKilledAtRandomPointsFlashesEveryRecorderOnce(t *testing.T) {
	points := []string{"download", "download_half", "verify", "wait_window", "install", "upload_half", "reboot", "confirm"}
	for _, seed := range []uint64{1, 2, 3, 4} {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 15))
			var devs []lab.SiteDevice
			for range 5 {
				devs = append(devs, lab.SiteDevice{Device: nvrsim.Config{Model: protected, Firmware: "V4.1.20"}})
			}
			l, err := lab.Start(lab.Options{Dir: t.TempDir(), Site: devs, Releases: []lab.Release{bigCustom},
				ExtraYAML: "install:\n  max_parallel: 2\n"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(l.Close)
			// A guard against a hang: up to six runs of a five-recorder
			// site as processes, under -race on a loaded CI machine.
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()

			var kills []string
			for round := 0; round < 2; round++ {
				at := fmt.Sprintf("%d:%s", rng.IntN(len(devs)), points[rng.IntN(len(points))])
				c := startSiteChild(t, l.ConfigPath, at)
				line, err := c.line(ctx, "AT ")
				if err != nil {
					// The recorder had passed that point already (its update
					// finished in an earlier round): the run ended on its own.
					_ = c.cmd.Wait()
					kills = append(kills, at+" (not reached)")
					continue
				}
				c.kill(t)
				kills = append(kills, strings.TrimPrefix(line, "AT "))
				for _, r := range l.Site.Recorders {
					if err := r.Wait(ctx, func(s nvrsim.State) bool { return !s.Receiving }); err != nil {
						t.Fatal(err)
					}
				}
			}
			var results []string
			for run := 0; run < 4; run++ {
				c := startSiteChild(t, l.ConfigPath, "")
				all := true
				for range devs {
					res, err := c.line(ctx, "RESULT ")
					if err != nil {
						t.Fatal(err)
					}
					results = append(results, res)
					all = all && (strings.Contains(res, " installed ") || strings.Contains(res, "up_to_date"))
				}
				if _, err := c.line(ctx, "DONE"); err != nil {
					t.Fatal(err)
				}
				_ = c.cmd.Wait()
				if all {
					break
				}
			}
			t.Logf("killed at %v, then %q", kills, results)
			want := l.Manifest().Releases[0].Image.SHA256
			for i, r := range l.Site.Recorders {
				st := r.State()
				if st.Bricked || st.Installs != 1 || !sameVersion(st.Firmware, "4.1.25") || st.LastUploadSHA256 != want {
					t.Errorf("%s: firmware %s, installs %d, bricked %v, last upload %s; want 4.1.25 flashed once", l.Site.Names[i], st.Firmware, st.Installs, st.Bricked, st.LastUploadSHA256)
				}
				dir := filepath.Join(l.StateDir, "devices", l.Site.Names[i])
				js, err := journal.ReadState(filepath.Join(dir, "journal.json"))
				if err != nil || js.Current != nil {
					t.Errorf("%s journal: %+v, %v", l.Site.Names[i], js.Current, err)
				}
				if n, err := audit.Verify(dir); err != nil || n == 0 {
					t.Errorf("%s audit chain: %d entries, %v", l.Site.Names[i], n, err)
				}
			}
			if imgs, _ := filepath.Glob(filepath.Join(l.StateDir, "images", "*")); len(imgs) != 0 {
				t.Errorf("images left in the cache after every recorder is done: %v", imgs)
			}
		})
	}
}
