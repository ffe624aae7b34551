package agent

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/fwagent/fwagent/agent/config"
	"github.com/fwagent/fwagent/device"
	"github.com/fwagent/fwagent/internal/statefile"
	"github.com/fwagent/fwagent/reason"
)

// CodeCredentialsRefused is the code of a daemon cycle that did not contact
// the device because it refused the same credentials before.
const CodeCredentialsRefused = string(reason.CredentialsRefused)

// refusedCredentialsFile records, in the state directory, that the device
// refused the configured credentials: a fingerprint of them (never the
// secret itself) and when it happened.
const refusedCredentialsFile = "credentials_refused.json"

// Device codes that mean the device refused the credentials fwagent sent
// (device/isapi's codes). A lock is not one of them: it may come from
// someone else's failed logins, and the backend sends no login while it
// lasts.
var credentialCodes = []string{device.CodeBadCredentials}

type refusedCredentials struct {
	Fingerprint string `json:"fingerprint"`
	// Salt (hex) of a salted, slow fingerprint; absent in the records of
	// older versions, whose fingerprint is a plain SHA-256.
	Salt string    `json:"salt,omitempty"`
	Code string    `json:"code"`
	At   time.Time `json:"at"`
}

// fingerprintIterations makes guessing a weak password from a stolen
// record slow (PBKDF2-SHA-256), while a check once per cycle stays cheap.
const fingerprintIterations = 100_000

// credentialsMaterial is the device URL, user and password the config
// names, as one string; "" for backends without credentials.
func credentialsMaterial(cfg *config.Config) string {
	if cfg.Device.Backend != config.BackendISAPI {
		return ""
	}
	i := cfg.Device.ISAPI
	return "fwagent credentials\x00" + i.URL + "\x00" + i.Username + "\x00" + i.Password
}

// credentialsFingerprint identifies the credentials without revealing the
// password: PBKDF2-SHA-256 over them with a random salt kept in the record,
// so a record never lets anyone test guesses of a weak password cheaply. A
// nil salt gives the unsalted SHA-256 of records written by older versions.
func credentialsFingerprint(material string, salt []byte) string {
	if salt == nil {
		sum := sha256.Sum256([]byte(material))
		return hex.EncodeToString(sum[:])
	}
	key, err := pbkdf2.Key(sha256.New, material, salt, fingerprintIterations, sha256.Size)
	if err != nil {
		return ""
	}
	return hex.EncodeToString(key)
}

func (a *Agent) refusedCredentialsPath() string {
	return filepath.Join(a.Config.StateDir, refusedCredentialsFile)
}

// credentialsRefused returns the record of an earlier refusal of exactly the
// configured credentials, or nil.
func (a *Agent) credentialsRefused() *refusedCredentials {
	material := credentialsMaterial(a.Config)
	if material == "" {
		return nil
	}
	b, err := os.ReadFile(a.refusedCredentialsPath())
	if err != nil {
		return nil
	}
	var r refusedCredentials
	if json.Unmarshal(b, &r) != nil {
		return nil
	}
	var salt []byte
	if r.Salt != "" {
		if salt, err = hex.DecodeString(r.Salt); err != nil || len(salt) == 0 {
			return nil
		}
	}
	if fp := credentialsFingerprint(material, salt); fp == "" || fp != r.Fingerprint {
		return nil
	}
	return &r
}

// noteCredentials remembers that the device refused the configured
// credentials when codes say so, and forgets an old refusal once the device
// accepted them.
func (a *Agent) noteCredentials(codes []string, accepted bool) {
	material := credentialsMaterial(a.Config)
	if material == "" {
		return
	}
	if accepted {
		if err := os.Remove(a.refusedCredentialsPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
			a.Log.WithError(err).Warn("could not forget the earlier refusal of the device credentials")
		}
		return
	}
	i := slices.IndexFunc(codes, func(c string) bool { return slices.Contains(credentialCodes, c) })
	if i < 0 {
		return
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		a.Log.WithError(err).Error("could not record that the device refused the credentials")
		return
	}
	b, _ := json.Marshal(refusedCredentials{Fingerprint: credentialsFingerprint(material, salt), Salt: hex.EncodeToString(salt), Code: codes[i], At: a.now().UTC()})
	if err := statefile.Write(a.refusedCredentialsPath(), b, 0o600); err != nil {
		a.Log.WithError(err).Error("could not record that the device refused the credentials")
	}
}

// credentialsError is the failure of a daemon cycle that holds back the
// credentials the device refused before.
func credentialsError(r *refusedCredentials, name string) error {
	where, now := "device.isapi username/password", "fwagent update --now"
	if name != "" {
		where = "username/password of the devices: entry " + name
		now = "fwagent update --now --device " + name
	}
	return failed(classDevice, CodeCredentialsRefused, fmt.Errorf("the device refused these credentials at %s (%s): the daemon sends them no more, so the account is never locked; fix %s in the config (or run %s once the device's password matches)", r.At.Format(time.RFC3339), r.Code, where, now))
}
