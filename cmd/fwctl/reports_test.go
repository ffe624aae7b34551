package main

import (
	"context"
	"crypto/ed25519"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fwagent/fwagent/fleet"
)

func TestReportsServeIsTheFleetServer(t *testing.T) {
	dir := t.TempDir()
	tokenPath, token := writeToken(t, dir)
	url, stderr := startServe(t, []string{"reports", "serve"}, "--db", filepath.Join(dir, "fleet.db"), "--admin-token-file", tokenPath)

	t.Run("it says once, on stderr, that it is fwctl fleet serve and where the migration is documented", func(t *testing.T) {
		if got := strings.Count(stderr.String(), "fwctl reports serve is now fwctl fleet serve"); got != 1 {
			t.Fatalf("the notice appears %d times in stderr:\n%s", got, stderr.String())
		}
		if !strings.Contains(stderr.String(), migrationDoc) {
			t.Fatalf("stderr does not name %s:\n%s", migrationDoc, stderr.String())
		}
	})
	t.Run("it prints the fleet server's URL on stdout", func(t *testing.T) {
		if !strings.HasPrefix(url, "http://127.0.0.1:") {
			t.Fatalf("printed URL %q", url)
		}
	})
	t.Run("an agent's signed check-in reaches the fleet server, with the database and admin token given", func(t *testing.T) {
		_, priv, _ := ed25519.GenerateKey(nil)
		agent := fleet.NewClient(url, fleet.NewDeviceKey(priv))
		reply, err := agent.CheckIn(context.Background(), fleet.CheckIn{Serial: "SN1", Model: "iDS-9632NXI-I8/16S", Firmware: "V4.1.24", AgentVersion: "1"})
		if err != nil || reply.Enrolment != fleet.EnrolPending {
			t.Fatalf("check-in: %+v, %v", reply, err)
		}
		out, errs, code := fwctl3(t, "fleet", "devices", "--state", "pending_enrolment", "--server", url, "--admin-token-file", tokenPath)
		if code != 0 || !strings.Contains(out, "SN1") {
			t.Fatalf("devices: exit %d\n%s%s", code, out, errs)
		}
	})
	t.Run("a report posted the old way, with a shared bearer token, is not accepted", func(t *testing.T) {
		body := `{"id":"r1","time":"2026-12-01T02:00:00Z","device_serial":"SN9","release_id":"rel","step":"done","result":"installed","agent_version":"t"}`
		req, _ := http.NewRequest(http.MethodPost, url+"/v1/reports", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("status %d, want 404", resp.StatusCode)
		}
	})
}

func TestReportsServeRefusesTheOldFlags(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "fleet.db")
	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"the shared agent token file is refused with the way to enrol device keys",
			[]string{"--token-file", "reports.token"}, exitUsage, []string{"--token-file", "fleet.url", "fwctl fleet approve", migrationDoc}},
		{"the reports file is refused with the way to import the old one",
			[]string{"--out", "reports.jsonl"}, exitUsage, []string{"--out", "fwctl fleet import OLD.jsonl", "rollout status --reports OLD.jsonl"}},
		{"the body limit is refused", []string{"--max-body", "65536"}, exitUsage, []string{"--max-body", "drop the flag"}},
		{"the old command line as a whole is refused",
			[]string{"--listen", "0.0.0.0:8470", "--token-file", "reports.token", "--out", "reports.jsonl"}, exitUsage, []string{"is now fwctl fleet serve"}},
		{"a half TLS configuration is refused as by fleet serve", []string{"--tls-cert", "c.pem"}, exitUsage, []string{"go together"}},
		{"a listen address beyond loopback without TLS is refused as by fleet serve", []string{"--listen", "0.0.0.0:0"}, exitUsage, []string{"not a loopback address"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs, code := fwctl3(t, append([]string{"reports", "serve", "--db", db}, tt.args...)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d: %s", code, tt.code, errs)
			}
			for _, w := range tt.want {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr does not say %q:\n%s", w, errs)
				}
			}
		})
	}
	t.Run("reports without a subcommand is a usage error that names fleet serve", func(t *testing.T) {
		_, errs, code := fwctl3(t, "reports")
		if code != exitUsage || !strings.Contains(errs, "fwctl fleet serve") {
			t.Fatalf("exit %d: %s", code, errs)
		}
	})
}

func TestReportsHelp(t *testing.T) {
	for _, args := range [][]string{{"reports"}, {"reports", "serve"}, {"rollout", "status"}, {"rollout", "advance"}} {
		t.Run(strings.Join(args, " ")+" has --help", func(t *testing.T) {
			if r := mustOK(t, append(args, "--help")...); !strings.Contains(r.stdout, "Usage:") {
				t.Fatalf("help: %s", r.stdout)
			}
		})
	}
	t.Run("reports serve --help shows the fleet server's flags and not the removed ones", func(t *testing.T) {
		r := mustOK(t, "reports", "serve", "--help")
		for _, f := range []string{"--admin-token-file", "--db", "--tls-cert"} {
			if !strings.Contains(r.stdout, f) {
				t.Errorf("help lacks %s:\n%s", f, r.stdout)
			}
		}
		if strings.Contains(r.stdout, "--token-file string") || strings.Contains(r.stdout, "--out string") {
			t.Errorf("help lists a removed flag:\n%s", r.stdout)
		}
	})
}
