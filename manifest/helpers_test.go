package manifest

import (
	"crypto/ed25519"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// testNow is the fixed "device clock" of these tests.
var testNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

const testDigest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

// newKeys makes n fresh key pairs.
func newKeys(t testing.TB, n int) ([]ed25519.PublicKey, []ed25519.PrivateKey) {
	t.Helper()
	var pubs []ed25519.PublicKey
	var privs []ed25519.PrivateKey
	for i := 0; i < n; i++ {
		pub, priv, err := GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		pubs = append(pubs, pub)
		privs = append(privs, priv)
	}
	return pubs, privs
}

// payloadMap is a valid manifest payload as a generic map, for tests that
// break one field at a time.
func payloadMap() map[string]any {
	return map[string]any{
		"schema":  1,
		"serial":  7,
		"issued":  "2026-12-01T00:00:00Z",
		"expires": "2027-01-01T00:00:00Z",
		"releases": []any{
			map[string]any{
				"id":      "ids-4.1.25",
				"models":  []any{"iDS-9632NXI-I8/16S"},
				"version": "4.1.25",
				"build":   "200316",
				"variant": "custom",
				"image": map[string]any{
					"urls":   []any{"https://fw.example.com/digicap.dav", "file:///srv/fw/digicap.dav"},
					"size":   1048576,
					"sha256": testDigest,
				},
				"requires":  map[string]any{"min_version": "4.0.0", "max_version": "4.1.24"},
				"terms_url": "https://vendor.example.com/terms",
				"notes":     "custom firmware for the 16S",
				"rollout": map[string]any{
					"id":      "ids-4.1.25-r1",
					"stages":  []any{map[string]any{"at": "2026-12-01T02:00:00Z", "percent": 5}, map[string]any{"at": "2026-12-03T02:00:00Z", "percent": 25}},
					"include": []any{"SERIAL-PILOT-1"},
					"exclude": []any{"SERIAL-VIP-1"},
					"groups":  []any{"pilot"},
				},
			},
		},
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// validPayload returns the bytes of payloadMap.
func validPayload(t testing.TB) []byte {
	t.Helper()
	return mustJSON(t, payloadMap())
}

// release0 returns the first release of a payload map.
func release0(m map[string]any) map[string]any {
	return m["releases"].([]any)[0].(map[string]any)
}

func mustSign(t testing.TB, payload []byte, keys ...ed25519.PrivateKey) []byte {
	t.Helper()
	env, err := Sign(payload, keys...)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func wantCode(t *testing.T, err error, code Code) {
	t.Helper()
	if code == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("got no error, want code %s", code)
	}
	if got := CodeOf(err); got != code {
		t.Fatalf("got code %q (%v), want %s", got, err, code)
	}
	if msg := err.Error(); strings.ToLower(msg[:1]) != msg[:1] {
		t.Errorf("message %q should start lowercase", msg)
	}
}
