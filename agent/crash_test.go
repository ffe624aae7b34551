package agent_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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

// The crash tests re-execute this test binary as the agent: with
// FWAGENT_CRASH_CHILD=1 it runs one `update --now` cycle against the config
// in FWAGENT_CRASH_CONFIG and prints "RESULT <result>". FWAGENT_CRASH_AT
// makes it print "AT <point>" and hang at that point, where the parent
// kills it with SIGKILL.
const (
	envChild  = "FWAGENT_CRASH_CHILD"
	envConfig = "FWAGENT_CRASH_CONFIG"
	envAt     = "FWAGENT_CRASH_AT"
)

func TestMain(m *testing.M) {
	if os.Getenv(envChild) == "1" {
		os.Exit(crashChild())
	}
	if os.Getenv(envSiteChild) == "1" {
		os.Exit(siteCrashChild())
	}
	os.Exit(m.Run())
}

func crashChild() int {
	cfg, err := config.Load(os.Getenv(envConfig))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	log := logrus.New()
	log.Out = io.Discard
	a, err := agent.New(cfg, agent.Options{Backend: backend.New, Version: "crash-child", Log: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer a.Close()
	at := os.Getenv(envAt)
	hang := func() {
		fmt.Printf("AT %s\n", at)
		select {} // until SIGKILL
	}
	switch at {
	case "":
	case "download_half":
		a.Downloader.Progress = func(done, total int64) {
			if done >= total/2 {
				hang()
			}
		}
	case "upload_half":
		a.InstallProgress = func(p device.InstallProgress) {
			if p.Phase == "upload" && p.Done >= p.Total/2 {
				hang()
			}
		}
	case "flashing":
		// The parent kills the child while the recorder flashes.
	default:
		agent.SetBeforeStep(a, func(step journal.Step) error {
			if string(step) == at {
				hang()
			}
			return nil
		})
	}
	out := a.Cycle(context.Background(), agent.ModeUpdateNow)
	fmt.Printf("RESULT %s %v %s\n", out.Result, out.Codes, out.Message)
	return 0
}

// child is one agent process of a crash test.
type child struct {
	cmd   *exec.Cmd
	lines chan string
}

func startChild(t *testing.T, configPath, at string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"=1", envConfig+"="+configPath, envAt+"="+at)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, lines: make(chan string, 16)}
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
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

// line waits for the child's next line with the given prefix.
func (c *child) line(ctx context.Context, prefix string) (string, error) {
	for {
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for %q: %w", prefix, ctx.Err())
		case l, ok := <-c.lines:
			if !ok {
				return "", fmt.Errorf("the agent exited before printing %q", prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return l, nil
			}
		}
	}
}

// exited waits for the child to end on its own: its output read to the
// end, then the process reaped.
func (c *child) exited() {
	for range c.lines {
	}
	_ = c.cmd.Wait()
}

func (c *child) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = c.cmd.Wait()
}

// TestAgentKilledAtEveryStepEndsOnTheRightFirmwareFlashedOnce kills the
// agent process with SIGKILL at every journal step and inside the long
// operations (half a download, half an upload, while the recorder flashes),
// restarts it, and checks that the recorder ends on 4.1.25 flashed exactly
// once with the proven image, and that the journal and audit chain are
// valid.
func TestAgentKilledAtEveryStepEndsOnTheRightFirmwareFlashedOnce(t *testing.T) {
	points := []string{
		"download", "download_half", "verify", "wait_window", "install",
		"upload_half", "flashing", "reboot", "confirm",
	}
	for _, at := range points {
		t.Run("killed at "+at, func(t *testing.T) {
			t.Parallel()
			dev := nvrsim.Config{Model: protected, Firmware: "V4.1.20"}
			if at == "flashing" {
				dev.FlashDuration = 400 * time.Millisecond
			}
			l, err := lab.Start(lab.Options{Dir: t.TempDir(), Device: dev, Releases: []lab.Release{bigCustom}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(l.Close)
			ctx := waitCtx(t)

			c := startChild(t, l.ConfigPath, at)
			if at == "flashing" {
				if err := l.Sim.Wait(ctx, func(s nvrsim.State) bool { return s.Upgrading }); err != nil {
					t.Fatal(err)
				}
			} else if _, err := c.line(ctx, "AT "); err != nil {
				t.Fatal(err)
			}
			c.kill(t)
			st, err := journal.ReadState(filepath.Join(l.StateDir, "journal.json"))
			if err != nil {
				t.Fatalf("journal after SIGKILL at %s: %v", at, err)
			}
			if st.Current == nil {
				t.Fatalf("journal after SIGKILL at %s has no update in progress", at)
			}
			// The recorder notices the cut upload on its own time.
			if err := l.Sim.Wait(ctx, func(s nvrsim.State) bool { return !s.Receiving }); err != nil {
				t.Fatal(err)
			}

			var results []string
			for run := 0; run < 3; run++ {
				c := startChild(t, l.ConfigPath, "")
				res, err := c.line(ctx, "RESULT ")
				if err != nil {
					t.Fatal(err)
				}
				// The child releases the state directory's lock as it
				// exits, after printing its result: the next one may start
				// only then.
				c.exited()
				results = append(results, res)
				if strings.HasPrefix(res, "RESULT installed") {
					break
				}
			}
			if !strings.HasPrefix(results[len(results)-1], "RESULT installed") {
				t.Fatalf("after SIGKILL at %s the restarted agent never installed: %q", at, results)
			}
			t.Logf("killed at %s (journal step %s), then: %q", at, st.Current.Step, results)
			sim := l.Sim.State()
			want := l.Manifest().Releases[0].Image.SHA256
			if sim.Bricked || sim.Installs != 1 || !sameVersion(sim.Firmware, "4.1.25") || sim.LastUploadSHA256 != want {
				t.Fatalf("simulator: firmware %s, installs %d, bricked %v, last upload %s; want 4.1.25 flashed once from %s", sim.Firmware, sim.Installs, sim.Bricked, sim.LastUploadSHA256, want)
			}
			final, err := journal.ReadState(filepath.Join(l.StateDir, "journal.json"))
			if err != nil || final.Current != nil || final.LastResult == nil || final.LastResult.Outcome != journal.OutcomeSuccess {
				t.Fatalf("final journal: %+v, %v", final, err)
			}
			if n, err := audit.Verify(l.StateDir); err != nil || n == 0 {
				t.Fatalf("audit chain: %d entries, %v", n, err)
			}
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				t.Fatal("timed out")
			}
		})
	}
}

// errCrash stands for the process dying.
var errCrash = errors.New("simulated crash")

// TestRestartFromEveryJournalStep stops the agent right after it recorded
// each step (as a crash there would leave the journal), builds a fresh agent
// from the config as a restarted process does, and runs cycles until the
// update is installed.
func TestRestartFromEveryJournalStep(t *testing.T) {
	steps := []journal.Step{journal.StepDownload, journal.StepVerify, journal.StepWaitWindow,
		journal.StepInstall, journal.StepReboot, journal.StepConfirm}
	for _, step := range steps {
		t.Run("stopped at "+string(step), func(t *testing.T) {
			w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}})
			w.fast(t, 0)
			agent.SetBeforeStep(w.agent, func(s journal.Step) error {
				if s == step {
					return errCrash
				}
				return nil
			})
			if out := w.cycle(t, agent.ModeUpdateNow); out.Result != agent.ResultStopped || !errors.Is(out.Err, errCrash) {
				t.Fatalf("%s (%v), want stopped by the crash seam", out.Result, out.Err)
			}
			if js := w.agent.Journal.State(); js.Current == nil || js.Current.Step != step {
				t.Fatalf("journal after the crash: %+v, want step %s", js.Current, step)
			}
			w.reopenFast(t, 0)
			outs := w.untilDone(t, agent.ModeUpdateNow, agent.ResultInstalled, 3)
			if step != journal.StepInstall && len(outs) != 1 {
				t.Errorf("took %d cycles, want the first one to finish", len(outs))
			}
			w.assertInstalledOnce(t)
		})
	}
}
