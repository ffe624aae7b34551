package fleet

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fwagent/fwagent/internal/statefile"
)

// Files of a DeviceKey in the agent's state directory.
const (
	KeyFile = "fleet-device.key" // PKCS#8 PEM, 0600
	SeqFile = "fleet-seq"        // the last sequence number used, decimal
)

// DeviceKey is a device's Ed25519 identity and its sequence counter. It
// signs check-ins and reports; each gets the next sequence number, which is
// persisted (atomically) before the message is returned, so a number is
// never used twice, even across a crash. The next number is also at least
// the current time in microseconds: a lost counter file does not make the
// server refuse the device's messages as replays. Safe for concurrent use.
type DeviceKey struct {
	// Now is the clock for message times and the sequence floor.
	Now func() time.Time

	priv ed25519.PrivateKey
	dir  string // "" keeps the counter in memory only

	mu  sync.Mutex
	seq uint64
}

// LoadOrCreateKey opens the device key in dir, creating it (0600, written
// atomically) on first use.
func LoadOrCreateKey(dir string) (*DeviceKey, error) {
	path := filepath.Join(dir, KeyFile)
	data, err := os.ReadFile(path)
	var priv ed25519.PrivateKey
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create the state directory for the device key: %w", err)
		}
		_, priv, err = ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate the device key: %w", err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return nil, fmt.Errorf("encode the device key: %w", err)
		}
		pemData := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		if err := statefile.Write(path, pemData, 0o600); err != nil {
			return nil, fmt.Errorf("write the device key %s: %w", path, err)
		}
	case err != nil:
		return nil, fmt.Errorf("read the device key: %w", err)
	default:
		block, _ := pem.Decode(data)
		if block == nil || block.Type != "PRIVATE KEY" {
			return nil, fmt.Errorf("the device key %s is not a PEM private key: move it away and restart (the device must then be approved again)", path)
		}
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse the device key %s: %w", path, err)
		}
		var ok bool
		if priv, ok = k.(ed25519.PrivateKey); !ok {
			return nil, fmt.Errorf("the device key %s is not an Ed25519 key", path)
		}
	}
	dk := &DeviceKey{Now: time.Now, priv: priv, dir: dir}
	if b, err := os.ReadFile(filepath.Join(dir, SeqFile)); err == nil {
		if dk.seq, err = strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err != nil {
			dk.seq = 0 // the time floor still keeps numbers growing
		}
	}
	return dk, nil
}

// NewDeviceKey wraps a key held in memory (simulators, tests); its counter
// is not persisted.
func NewDeviceKey(priv ed25519.PrivateKey) *DeviceKey {
	return &DeviceKey{Now: time.Now, priv: priv}
}

// Public returns the public key.
func (k *DeviceKey) Public() ed25519.PublicKey { return k.priv.Public().(ed25519.PublicKey) }

// ID returns KeyID of the public key.
func (k *DeviceKey) ID() string { return KeyID(k.Public()) }

// next reserves the next sequence number and persists it.
func (k *DeviceKey) next(now time.Time) (uint64, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := k.seq + 1
	if floor := uint64(now.UnixMicro()); floor > n {
		n = floor
	}
	if k.dir != "" {
		if err := statefile.Write(filepath.Join(k.dir, SeqFile), []byte(strconv.FormatUint(n, 10)+"\n"), 0o600); err != nil {
			return 0, fmt.Errorf("persist the fleet sequence number: %w", err)
		}
	}
	k.seq = n
	return n, nil
}

// SignCheckIn stamps c with the next sequence number (and the time, if
// unset) and signs it.
func (k *DeviceKey) SignCheckIn(c CheckIn) (*Envelope, CheckIn, error) {
	now := k.Now().UTC()
	seq, err := k.next(now)
	if err != nil {
		return nil, c, err
	}
	c.Seq = seq
	if c.Time.IsZero() {
		c.Time = now
	}
	if err := c.Validate(); err != nil {
		return nil, c, err
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return nil, c, err
	}
	return SealBytes(k.priv, TypeCheckIn, payload), c, nil
}

// SignReport stamps r with the next sequence number (and the time, if
// unset) and signs it. Sign a report when it is queued: the signature
// covers its time and sequence, so it verifies whenever it is delivered.
func (k *DeviceKey) SignReport(r Report) (*Envelope, Report, error) {
	now := k.Now().UTC()
	seq, err := k.next(now)
	if err != nil {
		return nil, r, err
	}
	r.Seq = seq
	if r.Time.IsZero() {
		r.Time = now
	}
	if err := r.Validate(); err != nil {
		return nil, r, err
	}
	payload, err := json.Marshal(r)
	if err != nil {
		return nil, r, err
	}
	return SealBytes(k.priv, TypeReport, payload), r, nil
}
