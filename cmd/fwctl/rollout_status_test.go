package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fwagent/fwagent/manifest"
)

// serialsInBuckets returns n serials whose bucket for rollout id is in [lo, hi).
func serialsInBuckets(t *testing.T, id string, lo, hi, n int) []string {
	t.Helper()
	var out []string
	for i := 0; len(out) < n && i < 1_000_000; i++ {
		s := fmt.Sprintf("DEV%06d", i)
		if b := manifest.Bucket(id, s); b >= lo && b < hi {
			out = append(out, s)
		}
	}
	if len(out) < n {
		t.Fatalf("found %d serials with buckets in [%d, %d), want %d", len(out), lo, hi, n)
	}
	return out
}

// writeReports writes a reports file: one final report per serial, failed
// for the first nFailed, installed for the others, received at.
func writeReports(t *testing.T, path string, serials []string, nFailed int, at time.Time) {
	t.Helper()
	var b strings.Builder
	for i, s := range serials {
		r := map[string]any{"id": "id-" + s, "time": at.Format(time.RFC3339), "device_serial": s, "model": "iDS-9632NXI-I8/16S",
			"release_id": "ids-4.1.25", "step": "done", "result": "installed", "agent_version": "t"}
		if i < nFailed {
			r["step"], r["result"], r["codes"] = "install", "failed", []string{"badFlash"}
		}
		rb, _ := json.Marshal(r)
		fmt.Fprintf(&b, "{\"received\":%q,\"report\":%s}\n", at.Format(time.RFC3339Nano), rb)
	}
	// A report about another release, and a line cut by a crash.
	b.WriteString(`{"received":"2026-12-01T00:00:00Z","report":{"id":"x","time":"2026-12-01T00:00:00Z","device_serial":"Z","release_id":"other","step":"done","result":"installed"}}` + "\n")
	b.WriteString(`{"received":"2026-12-01T00:00:00Z","rep`)
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// stagedEnvelope signs a manifest whose release is at stage 1 (5%) since
// two hours ago, with stages 2 and 3 in the future.
func stagedEnvelope(t *testing.T, dir string) (env, key string) {
	t.Helper()
	alice := keygen(t, dir, "alice")
	env = filepath.Join(dir, "m.dsse.json")
	mustOK(t, "sign", "--key", alice+".key", "-o", env, writeJSON(t, filepath.Join(dir, "m.json"), testPayload(10)))
	now := time.Now().UTC().Truncate(time.Second)
	stages := fmt.Sprintf("5%%@%s,50%%@%s,100%%@%s", now.Add(-2*time.Hour).Format(time.RFC3339),
		now.Add(24*time.Hour).Format(time.RFC3339), now.Add(48*time.Hour).Format(time.RFC3339))
	mustOK(t, "rollout", "set", "--release", "ids-4.1.25", "--stages", stages, "--key", alice+".key", "--pub", alice+".pub", env)
	return env, alice
}

func TestRolloutStatus(t *testing.T) {
	dir := t.TempDir()
	env, _ := stagedEnvelope(t, dir)
	serials := serialsInBuckets(t, "ids-4.1.25", 0, 500, 4)
	rep := filepath.Join(dir, "reports.jsonl")
	writeReports(t, rep, serials, 1, time.Now().Add(-time.Hour))

	t.Run("with the envelope it counts per stage", func(t *testing.T) {
		r := mustOK(t, "rollout", "status", "--release", "ids-4.1.25", "--reports", rep, env)
		t.Log("\n" + r.stdout)
		for _, want := range []string{"stage 1 of 3 (5%)", "*1", "25.0%", "failures in stage 1 (5%): badFlash 1"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("stdout lacks %q", want)
			}
		}
		if !strings.Contains(r.stderr, "line 6: the last line is incomplete") {
			t.Errorf("stderr %q does not warn about the cut line", r.stderr)
		}
	})
	t.Run("without the envelope it counts only", func(t *testing.T) {
		r := mustOK(t, "rollout", "status", "--release", "ids-4.1.25", "--reports", rep, "--devices")
		if !strings.Contains(r.stdout, "no rollout given") || !strings.Contains(r.stdout, serials[0]) || strings.Contains(r.stdout, "*1") {
			t.Fatalf("stdout:\n%s", r.stdout)
		}
	})
	for _, tt := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"an unknown release is refused", []string{"rollout", "status", "--release", "nope", "--reports", rep, env}, 1, "no such release"},
		{"a missing reports file is refused", []string{"rollout", "status", "--release", "ids-4.1.25", "--reports", filepath.Join(dir, "nope.jsonl")}, 1, "reports file"},
		{"a missing --reports is a usage error", []string{"rollout", "status", "--release", "ids-4.1.25"}, 2, "--reports"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := fwctl(t, tt.args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)", r.code, tt.code, r.stderr, tt.want)
			}
		})
	}
}

func TestRolloutAdvance(t *testing.T) {
	dir := t.TempDir()
	env, alice := stagedEnvelope(t, dir)
	serials := serialsInBuckets(t, "ids-4.1.25", 0, 500, 50)
	bad := filepath.Join(dir, "bad.jsonl")
	writeReports(t, bad, serials, 2, time.Now().Add(-time.Hour)) // 4%
	good := filepath.Join(dir, "good.jsonl")
	writeReports(t, good, serials, 1, time.Now().Add(-time.Hour)) // 2%
	empty := filepath.Join(dir, "empty.jsonl")
	writeReports(t, empty, nil, 0, time.Now())
	before, _ := os.ReadFile(env)

	refusals := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"a failure rate above the limit is refused with a pause hint", []string{"--reports", bad, "--max-failure-rate", "2%"}, 1, "above the 2% limit"},
		{"a stage without finished devices is refused", []string{"--reports", empty, "--max-failure-rate", "2%"}, 1, "0 finished device(s)"},
		{"a rate without percent sign is a usage error", []string{"--reports", good, "--max-failure-rate", "0.02"}, 2, "percent"},
		{"a missing --max-failure-rate is a usage error", []string{"--reports", good}, 2, "--max-failure-rate"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"rollout", "advance", "--release", "ids-4.1.25", "--key", alice + ".key", "--pub", alice + ".pub"}, tt.args...)
			r := fwctl(t, append(args, env)...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)", r.code, tt.code, r.stderr, tt.want)
			}
			if tt.code == 1 && !strings.Contains(r.stderr, "fwctl rollout pause --release ids-4.1.25") {
				t.Errorf("stderr %q does not suggest pause", r.stderr)
			}
			if after, _ := os.ReadFile(env); string(after) != string(before) {
				t.Fatal("a refused advance changed the envelope")
			}
		})
	}

	t.Run("a failure rate at the limit opens the next stage now", func(t *testing.T) {
		start := time.Now().UTC().Truncate(time.Second)
		r := mustOK(t, "rollout", "advance", "--release", "ids-4.1.25", "--reports", good, "--max-failure-rate", "2%", "--key", alice+".key", "--pub", alice+".pub", env)
		if !strings.Contains(r.stdout, "opened stage 2 of 3 (50%)") {
			t.Fatalf("stdout:\n%s", r.stdout)
		}
		v := verified(t, env, alice+".pub")
		ro := v.Manifest.Releases[0].Rollout
		if v.Manifest.Serial != 12 || ro.Stages[1].At.Before(start) || ro.Stages[1].At.After(time.Now()) {
			t.Fatalf("serial %d, stage 2 at %s: want 12 and now", v.Manifest.Serial, ro.Stages[1].At)
		}
		if cur, _ := ro.Current(time.Now()); cur != 1 {
			t.Fatalf("current stage %d after advance", cur)
		}
	})
	t.Run("advancing past the last stage is refused", func(t *testing.T) {
		last := filepath.Join(dir, "last.dsse.json")
		now := time.Now().UTC().Truncate(time.Second)
		mustOK(t, "rollout", "set", "--release", "ids-4.1.25", "--key", alice+".key", "--pub", alice+".pub", "-o", last,
			"--stages", fmt.Sprintf("100%%@%s", now.Add(-3*time.Hour).Format(time.RFC3339)), env)
		r := fwctl(t, "rollout", "advance", "--release", "ids-4.1.25", "--reports", good, "--max-failure-rate", "5%", "--min-finished", "0", "--key", alice+".key", "--pub", alice+".pub", last)
		if r.code != 1 || !strings.Contains(r.stderr, "last stage") {
			t.Fatalf("exit %d stderr %q", r.code, r.stderr)
		}
	})
}
