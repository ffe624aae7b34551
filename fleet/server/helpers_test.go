package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/fwagent/fwagent/agent/report"
	"github.com/fwagent/fwagent/fleet"
	"github.com/fwagent/fwagent/fleet/postgres"
	"github.com/fwagent/fwagent/fleet/server"
	"github.com/fwagent/fwagent/fleet/sqlite"
	"github.com/fwagent/fwagent/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const adminToken = "0123456789abcdef0123456789abcdef"

// fixture is a fleet server on a loopback port over a real store.
type fixture struct {
	t     *testing.T
	store fleet.Store
	srv   *server.Server
	http  *httptest.Server
}

func sqliteStore(t *testing.T) fleet.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func postgresStore(t *testing.T, url string) fleet.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), url, 8)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// stores runs fn against both real stores.
func stores(t *testing.T, fn func(t *testing.T, open func(t *testing.T) fleet.Store)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, sqliteStore) })
	t.Run("postgres", func(t *testing.T) {
		fn(t, func(t *testing.T) fleet.Store { return postgresStore(t, pgtest.URL(t)) })
	})
}

func newFixture(t *testing.T, store fleet.Store, opt server.Options) *fixture {
	t.Helper()
	if opt.AdminToken == "" {
		opt.AdminToken = adminToken
	}
	srv, err := server.New(store, opt)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { hs.Close(); srv.Close() })
	return &fixture{t: t, store: store, srv: srv, http: hs}
}

// agent is a simulated agent with its own key.
type agent struct {
	serial string
	key    *fleet.DeviceKey
	client *fleet.Client
}

func (f *fixture) agent(serial string) *agent {
	_, priv, _ := ed25519.GenerateKey(nil)
	k := fleet.NewDeviceKey(priv)
	c := fleet.NewClient(f.http.URL, k)
	c.HTTPClient.RetryMax = 0
	return &agent{serial: serial, key: k, client: c}
}

func (a *agent) checkIn(mutate ...func(*fleet.CheckIn)) (fleet.CheckInReply, error) {
	c := fleet.CheckIn{Serial: a.serial, Model: "iDS-9632NXI-I8/16S", Firmware: "V4.1.24", AgentVersion: "1.0", IntervalSeconds: 60}
	for _, m := range mutate {
		m(&c)
	}
	return a.client.CheckIn(context.Background(), c)
}

func (a *agent) report(release, step, result string, codes ...string) error {
	return a.client.Report(context.Background(), fleet.Report{Report: report.Report{ID: release + step + result + a.serial, DeviceSerial: a.serial,
		Model: "iDS-9632NXI-I8/16S", ReleaseID: release, Step: step, Result: result, Codes: codes, AgentVersion: "1.0"}})
}

// post sends raw bytes to an agent endpoint.
func (f *fixture) post(path string, body []byte) (int, string) {
	f.t.Helper()
	resp, err := http.Post(f.http.URL+path, "application/json", bytes.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// admin calls the admin API with the token and decodes the answer into out.
func (f *fixture) admin(method, path string, body any, out any) int {
	f.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, f.http.URL+path, rd)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set(server.ActorHeader, "tester@host")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

func (f *fixture) counters() map[string]int64 {
	f.t.Helper()
	if err := f.srv.FlushCounters(context.Background()); err != nil {
		f.t.Fatal(err)
	}
	c, err := f.store.Counters(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

func (f *fixture) reportsOn(release string) int {
	f.t.Helper()
	r, err := f.store.Reports(context.Background(), release)
	if err != nil {
		f.t.Fatal(err)
	}
	return len(r)
}
