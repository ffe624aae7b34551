package fetch

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
)

// testImage returns n deterministic pseudo-random bytes and their digest.
func testImage(t *testing.T, n int) ([]byte, string) {
	t.Helper()
	b := make([]byte, n)
	rand.New(rand.NewSource(int64(n))).Read(b)
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:])
}

// fastClient is the production client with millisecond backoffs.
func fastClient(t *testing.T) *Downloader {
	t.Helper()
	c := NewHTTPClient(ClientOptions{RetryWaitMin: time.Millisecond, RetryWaitMax: 2 * time.Millisecond})
	return &Downloader{
		Client:       c.StandardClient(),
		StallTimeout: 5 * time.Second,
		RetryMax:     2,
		Backoff:      func(int) time.Duration { return time.Millisecond },
	}
}

func testLogger(t *testing.T) (*logrus.Logger, *test.Hook) {
	t.Helper()
	l, hook := test.NewNullLogger()
	l.SetLevel(logrus.DebugLevel)
	return l, hook
}

// mustFile asserts that path holds exactly want.
func mustFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s holds %d bytes that differ from the %d expected", path, len(got), len(want))
	}
}

func mustNotExist(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("%s should not exist (stat err %v)", path, err)
	}
}

func destPath(t *testing.T) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "images", "digicap.dav")
}
