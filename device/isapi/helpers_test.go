package isapi

import (
	"bytes"
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/fwagent/fwagent/device"
	"github.com/fwagent/fwagent/internal/nvrsim"
	"github.com/fwagent/fwagent/internal/testimage"
)

// startSim runs a simulated recorder for the test.
func startSim(t *testing.T, cfg nvrsim.Config) *nvrsim.Server {
	t.Helper()
	if cfg.TempDir == "" {
		cfg.TempDir = t.TempDir()
	}
	srv, err := nvrsim.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// logBuffer collects a client's log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newTestClient builds a client for srv with the simulator's default
// credentials and millisecond timings; mutate adjusts the config.
func newTestClient(t *testing.T, url string, mutate func(*Config)) (*Client, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	l := logrus.New()
	l.SetOutput(logs)
	l.SetLevel(logrus.DebugLevel)
	cfg := Config{
		BaseURL:        url,
		Username:       "admin",
		Password:       "admin12345",
		RequestTimeout: 5 * time.Second,
		UploadTimeout:  30 * time.Second,
		FlashTimeout:   10 * time.Second,
		RebootTimeout:  10 * time.Second,
		DownGrace:      2 * time.Second,
		PollInterval:   2 * time.Millisecond,
		RetryMax:       3,
		RetryWaitMin:   time.Millisecond,
		RetryWaitMax:   5 * time.Millisecond,
		Logger:         l,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, logs
}

// writeImage writes a test image and returns its path and size.
func writeImage(t *testing.T, spec testimage.Spec) (string, int64) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "digicap.dav")
	size, _, err := testimage.WriteFile(path, spec)
	if err != nil {
		t.Fatal(err)
	}
	return path, size
}

// progressLog records progress reports.
type progressLog struct {
	mu      sync.Mutex
	reports []device.InstallProgress
}

func (p *progressLog) add(r device.InstallProgress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reports = append(p.reports, r)
}

// last returns the last report of a phase.
func (p *progressLog) last(phase string) (device.InstallProgress, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.reports) - 1; i >= 0; i-- {
		if p.reports[i].Phase == phase {
			return p.reports[i], true
		}
	}
	return device.InstallProgress{}, false
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
