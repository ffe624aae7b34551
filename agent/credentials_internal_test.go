package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/fwagent/fwagent/agent/config"
)

func credentialsConfig(t *testing.T, password string) *config.Config {
	t.Helper()
	cfg := &config.Config{StateDir: t.TempDir()}
	cfg.Device.Backend = config.BackendISAPI
	cfg.Device.ISAPI.URL = "https://192.0.2.10"
	cfg.Device.ISAPI.Username = "admin"
	cfg.Device.ISAPI.Password = password
	return cfg
}

func TestTheRefusedCredentialsRecordHoldsASaltedSlowFingerprint(t *testing.T) {
	cfg := credentialsConfig(t, "weak1")
	a := &Agent{Config: cfg, Log: logrus.New(), Now: func() time.Time { return time.Unix(1_900_000_000, 0) }}
	a.noteCredentials([]string{"badCredentials"}, false)

	b, err := os.ReadFile(filepath.Join(cfg.StateDir, refusedCredentialsFile))
	if err != nil {
		t.Fatal(err)
	}
	var r refusedCredentials
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	plain := sha256.Sum256([]byte(credentialsMaterial(cfg)))
	if r.Salt == "" || r.Fingerprint == hex.EncodeToString(plain[:]) || strings.Contains(string(b), "weak1") {
		t.Fatalf("record %s: want a salt and a fingerprint that is not the plain SHA-256 of the credentials", b)
	}
	if a.credentialsRefused() == nil {
		t.Fatal("the same credentials are not recognised as refused")
	}
	cfg.Device.ISAPI.Password = "fixed-password"
	if a.credentialsRefused() != nil {
		t.Fatal("changed credentials are still held back")
	}
}

func TestARefusalRecordedByAnOlderVersionIsStillHonoured(t *testing.T) {
	cfg := credentialsConfig(t, "weak1")
	a := &Agent{Config: cfg, Log: logrus.New()}
	sum := sha256.Sum256([]byte(credentialsMaterial(cfg)))
	old, _ := json.Marshal(map[string]any{"fingerprint": hex.EncodeToString(sum[:]), "code": "badCredentials", "at": time.Unix(1_900_000_000, 0).UTC()})
	if err := os.WriteFile(filepath.Join(cfg.StateDir, refusedCredentialsFile), old, 0o600); err != nil {
		t.Fatal(err)
	}
	if a.credentialsRefused() == nil {
		t.Fatal("an unsalted record of an older version is ignored: the daemon would send refused credentials again")
	}
}
