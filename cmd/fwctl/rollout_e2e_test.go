package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/fwagent/fwagent/agent"
	"github.com/fwagent/fwagent/agent/backend"
	"github.com/fwagent/fwagent/agent/config"
	"github.com/fwagent/fwagent/internal/lab"
	"github.com/fwagent/fwagent/internal/nvrsim"
	"github.com/fwagent/fwagent/manifest"
	"github.com/fwagent/fwagent/reports"
)

// fleetDevice is one simulated recorder with its own agent.
type fleetDevice struct {
	name  string
	sim   *nvrsim.Server
	agent *agent.Agent
}

func (d *fleetDevice) cycle(t *testing.T) agent.Outcome {
	t.Helper()
	ctx := context.Background()
	out := d.agent.Cycle(ctx, agent.ModeUpdateNow)
	d.agent.FlushReports(ctx)
	t.Logf("%s (%s): %s: %s", d.name, d.sim.Config().Serial, out.Result, out.Message)
	return out
}

// newAgent builds an agent from a config file, with ms polls for tests.
func newAgent(t *testing.T, path string) *agent.Agent {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.Out = io.Discard
	if os.Getenv("FWCTL_E2E_LOG") != "" {
		log.Out = os.Stderr
	}
	a, err := agent.New(cfg, agent.Options{Backend: backend.New, Version: "e2e", Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

// TestStagedRolloutEndToEnd is issue 7's "done when": three simulated
// devices, a rollout at 0% then raised: only the eligible device installs;
// a pause stops installs; the agents' signed reports reach `fwctl fleet
// serve` and `fwctl rollout status --server` counts them, as does
// `rollout status --reports` from the same reports in a file.
func TestStagedRolloutEndToEnd(t *testing.T) {
	dir := t.TempDir()
	const rolloutID, releaseID = "e2e-rollout", "custom-4.1.25"
	// A's bucket is below 5000 (eligible at 50%), B's and C's are not.
	low := serialsInBuckets(t, rolloutID, 0, 5000, 1)
	high := serialsInBuckets(t, rolloutID, 5000, 10000, 2)
	serials := map[string]string{"A": low[0], "B": high[0], "C": high[1]}

	tokenPath, token := writeToken(t, dir)
	fleetURL, _ := startFleetServe(t, "--db", filepath.Join(dir, "fleet.db"), "--admin-token-file", tokenPath)
	admin := []string{"--server", fleetURL, "--admin-token-file", tokenPath}
	// The serials from the delivery note: each one's first key enrols.
	mustOK(t, append([]string{"fleet", "approve", serials["A"], serials["B"], serials["C"]}, admin...)...)

	now := time.Now().UTC().Truncate(time.Second)
	l, err := lab.Start(lab.Options{
		Dir:    filepath.Join(dir, "lab"),
		Device: nvrsim.Config{Serial: serials["A"]},
		Releases: []lab.Release{{ID: releaseID, Version: "4.1.25", Variant: "custom", Rollout: &manifest.Rollout{ID: rolloutID, Stages: []manifest.Stage{
			{At: now.Add(-time.Hour), Percent: 0},
			{At: now.Add(24 * time.Hour), Percent: 50},
			{At: now.Add(48 * time.Hour), Percent: 100},
		}}}},
		ExtraYAML: fmt.Sprintf("fleet:\n  url: %s\n", fleetURL),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	labYAML, err := os.ReadFile(l.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	fleet := []*fleetDevice{{name: "A", sim: l.Sim, agent: newAgent(t, l.ConfigPath)}}
	for _, name := range []string{"B", "C"} {
		ddir := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Join(ddir, "sim"), 0o700); err != nil {
			t.Fatal(err)
		}
		// The lab's recorder (same model, firmware, credentials and reboot
		// delay) with another serial.
		simCfg := l.Sim.Config()
		simCfg.Serial, simCfg.TempDir = serials[name], filepath.Join(ddir, "sim")
		sim, err := nvrsim.Start(simCfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sim.Close() })
		// The same agent config, pointed at this recorder and its own state.
		swap := []string{l.Sim.URL(), sim.URL(), l.StateDir, filepath.Join(ddir, "state"), l.LogDir, filepath.Join(ddir, "log")}
		if simCfg.TLS {
			swap = append(swap, l.Sim.Fingerprint(), sim.Fingerprint())
		}
		yaml := strings.NewReplacer(swap...).Replace(string(labYAML))
		cfgPath := filepath.Join(ddir, "agent.yaml")
		if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		fleet = append(fleet, &fleetDevice{name: name, sim: sim, agent: newAgent(t, cfgPath)})
	}

	// The integrator's copy of the signed manifest, changed with fwctl and
	// published on the update server.
	env := filepath.Join(dir, "manifest.dsse.json")
	data, err := os.ReadFile(filepath.Join(l.Dir, "www", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(env, data, 0o644); err != nil {
		t.Fatal(err)
	}
	// Both lab keys re-sign: a release for the protected model needs two
	// distinct signers (or a pin) on every manifest that carries it.
	key, key2 := filepath.Join(l.Dir, "keys", "lab.key"), filepath.Join(l.Dir, "keys", "lab2.key")
	pub := l.PubPath
	fwctlPublish := func(args ...string) result {
		t.Helper()
		r := mustOK(t, append(args, env)...)
		data, err := os.ReadFile(env)
		if err != nil {
			t.Fatal(err)
		}
		u, err := manifest.ReadUnverified(data, manifest.ParseOptions{})
		if err != nil || u.ParseErr != nil {
			t.Fatalf("read back the envelope: %v %v", err, u.ParseErr)
		}
		if err := l.PublishEnvelope(u.Manifest, data); err != nil {
			t.Fatal(err)
		}
		return r
	}
	installs := func() map[string]int {
		out := map[string]int{}
		for _, d := range fleet {
			out[d.name] = d.sim.State().Installs
		}
		return out
	}
	expect := func(step string, want map[string]agent.Result, wantInstalls map[string]int) {
		t.Helper()
		for _, d := range fleet {
			w, ok := want[d.name]
			if !ok {
				continue
			}
			if out := d.cycle(t); out.Result != w {
				t.Fatalf("%s: device %s: result %s (%s), want %s", step, d.name, out.Result, out.Message, w)
			}
		}
		if got := installs(); fmt.Sprint(got) != fmt.Sprint(wantInstalls) {
			t.Fatalf("%s: installs %v, want %v", step, got, wantInstalls)
		}
	}

	expect("at 0%", map[string]agent.Result{"A": agent.ResultNothing, "B": agent.ResultNothing, "C": agent.ResultNothing},
		map[string]int{"A": 0, "B": 0, "C": 0})

	// Stage 1 is 0%: no device can finish, so advancing needs --min-finished 0.
	r := fwctl(t, append([]string{"rollout", "advance", "--release", releaseID, "--max-failure-rate", "2%", "--key", key, "--key", key2, "--pub", pub, env}, admin...)...)
	if r.code != 1 || !strings.Contains(r.stderr, "0 finished device(s)") {
		t.Fatalf("advance without evidence: exit %d, %s", r.code, r.stderr)
	}
	fwctlPublish(append([]string{"rollout", "advance", "--release", releaseID, "--max-failure-rate", "2%", "--min-finished", "0", "--key", key, "--key", key2, "--pub", pub}, admin...)...)
	expect("at 50%", map[string]agent.Result{"A": agent.ResultInstalled, "B": agent.ResultNothing, "C": agent.ResultNothing},
		map[string]int{"A": 1, "B": 0, "C": 0})

	status := mustOK(t, append([]string{"rollout", "status", "--release", releaseID, env}, admin...)...)
	t.Log("\n" + status.stdout)
	s := summary(t, exportReports(t, fleetURL, token, releaseID, dir), releaseID, env)
	if s.Total.Devices != 1 || s.Stages[2].Confirmed != 1 || s.Devices[0].Serial != serials["A"] {
		t.Fatalf("after 50%%: %+v", s.Total)
	}

	// Pause, then open every stage: eligible devices still start nothing.
	fwctlPublish("rollout", "pause", "--release", releaseID, "--key", key, "--key", key2, "--pub", pub)
	stages := fmt.Sprintf("0%%@%s,50%%@%s,100%%@%s", now.Add(-3*time.Hour).Format(time.RFC3339), now.Add(-2*time.Hour).Format(time.RFC3339), now.Add(-time.Hour).Format(time.RFC3339))
	fwctlPublish("rollout", "set", "--release", releaseID, "--stages", stages, "--key", key, "--key", key2, "--pub", pub)
	expect("paused at 100%", map[string]agent.Result{"B": agent.ResultPaused, "C": agent.ResultPaused},
		map[string]int{"A": 1, "B": 0, "C": 0})

	fwctlPublish("rollout", "resume", "--release", releaseID, "--key", key, "--key", key2, "--pub", pub)
	expect("resumed at 100%", map[string]agent.Result{"A": agent.ResultNothing, "B": agent.ResultInstalled, "C": agent.ResultInstalled},
		map[string]int{"A": 1, "B": 1, "C": 1})

	at := time.Now().UTC().Format(time.RFC3339)
	status = mustOK(t, append([]string{"rollout", "status", "--release", releaseID, "--at", at, "--devices", env}, admin...)...)
	t.Log("\n" + status.stdout)
	reportsFile := exportReports(t, fleetURL, token, releaseID, dir)
	s = summary(t, reportsFile, releaseID, env)
	if s.Total.Devices != 3 || s.Total.Confirmed != 3 || s.Stages[2].Confirmed != 1 || s.Stages[3].Confirmed != 2 || s.Total.Failed != 0 {
		t.Fatalf("final counts: total %+v, stage 2 %+v, stage 3 %+v", s.Total, s.Stages[2].Counts, s.Stages[3].Counts)
	}
	if !strings.Contains(status.stdout, "total") || !strings.Contains(status.stdout, serials["C"]) {
		t.Fatalf("status output:\n%s", status.stdout)
	}
	// The same reports as a file in the old format (what fwctl fleet import
	// reads and rollout status --reports reads) give the same table.
	fromFile := mustOK(t, "rollout", "status", "--release", releaseID, "--reports", reportsFile, "--at", at, "--devices", env)
	if fromFile.stdout != status.stdout {
		t.Fatalf("rollout status --reports FILE:\n%s\nrollout status --server:\n%s", fromFile.stdout, status.stdout)
	}
}

// exportReports writes the release's reports held by the fleet server to a
// file, in the JSON Lines format of the old reports file, and returns its
// path.
func exportReports(t *testing.T, url, token, release, dir string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url+"/v1/admin/releases/"+release+"/reports", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("export the reports: status %d, %v: %s", resp.StatusCode, err, data)
	}
	path := filepath.Join(dir, "reports.jsonl")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// summary reads the reports file and summarizes the release with the
// envelope's rollout.
func summary(t *testing.T, path, release, env string) *reports.Summary {
	t.Helper()
	f, err := reports.ReadReports(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Bad) != 0 {
		t.Fatalf("bad lines in the reports file: %v", f.Bad)
	}
	data, err := os.ReadFile(env)
	if err != nil {
		t.Fatal(err)
	}
	u, err := manifest.ReadUnverified(data, manifest.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return reports.Summarize(f.Records, release, u.Manifest.Release(release).Rollout, time.Now())
}
