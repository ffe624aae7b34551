package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/fwagent/fwagent/agent"
	"github.com/fwagent/fwagent/agent/backend"
	"github.com/fwagent/fwagent/internal/lab"
)

// TestTheLastSuccessMetricSurvivesARestart: after a restart the daemon's
// fwagent_last_success_timestamp_seconds is the journal's last success,
// not 0.
func TestTheLastSuccessMetricSurvivesARestart(t *testing.T) {
	w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}})
	if out := w.cycle(t, agent.ModeUpdateNow); out.Result != agent.ResultInstalled {
		t.Fatalf("%s %v (%s)", out.Result, out.Codes, out.Message)
	}
	finished := w.agent.Journal.State().LastResult.Finished
	w.reopen(t) // a restarted daemon
	w.runDaemon(t, 1)
	var buf bytes.Buffer
	if _, err := w.agent.Metrics.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(buf.String(), "\n") {
		if !strings.HasPrefix(line, "fwagent_last_success_timestamp_seconds") {
			continue
		}
		f := strings.Fields(line)
		got, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatal(err)
		}
		if want := float64(finished.UnixMilli()) / 1000; got != want {
			t.Fatalf("%s, want %v (the journal's last success)", line, want)
		}
		return
	}
	t.Fatalf("no last-success metric in:\n%s", buf.String())
}

// TestEveryLogLineOfAnUpdateNamesItsStep: the README's promise that every
// line of an attempt carries a step field, the lines of the downloader and
// the device backend included.
func TestEveryLogLineOfAnUpdateNamesItsStep(t *testing.T) {
	w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}})
	var buf bytes.Buffer
	log := logrus.New()
	log.Out = &buf
	log.Formatter = &logrus.JSONFormatter{}
	cfg, err := w.lab.Config()
	if err != nil {
		t.Fatal(err)
	}
	_ = w.agent.Close()
	a, err := agent.New(cfg, agent.Options{Backend: backend.New, Version: "test", Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if out := a.Cycle(context.Background(), agent.ModeUpdateNow); out.Result != agent.ResultInstalled {
		t.Fatalf("%s: %s", out.Result, out.Message)
	}
	steps := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		step, _ := e["step"].(string)
		if step == "" {
			t.Errorf("a line of the update has no step: %s", line)
		}
		steps[step]++
	}
	for _, want := range []string{"identify", "fetch_manifest", "download", "flash", "confirm"} {
		if steps[want] == 0 {
			t.Errorf("no line of step %s (lines per step: %v)", want, steps)
		}
	}
}
