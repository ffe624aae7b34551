package manifest

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/google/renameio/v2"
)

// PEM block types, as OpenSSL writes them for Ed25519 keys.
const (
	pemPrivate = "PRIVATE KEY" // PKCS#8
	pemPublic  = "PUBLIC KEY"  // PKIX SubjectPublicKeyInfo
)

// maxKeyFile bounds how much of a key file is read.
const maxKeyFile = 64 << 10

// GenerateKey makes a new Ed25519 key pair from crypto/rand.
func GenerateKey() (ed25519.PublicKey, ed25519.PrivateKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate ed25519 key: %w", err)
	}
	return pub, priv, nil
}

// KeyID returns the lowercase hex SHA-256 of pub's PKIX DER encoding: the key
// ID used in envelope signatures.
func KeyID(pub ed25519.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		// Only a key of the wrong length fails here; it cannot match any ID.
		return ""
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// MarshalPrivateKey encodes priv as a PKCS#8 "PRIVATE KEY" PEM block,
// byte-identical to what `openssl genpkey -algorithm ed25519` writes.
func MarshalPrivateKey(priv ed25519.PrivateKey) ([]byte, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("marshal private key: %w", ErrNotEd25519)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivate, Bytes: der}), nil
}

// MarshalPublicKey encodes pub as a PKIX "PUBLIC KEY" PEM block,
// byte-identical to what `openssl pkey -pubout` writes.
func MarshalPublicKey(pub ed25519.PublicKey) ([]byte, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("marshal public key: %w", ErrNotEd25519)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPublic, Bytes: der}), nil
}

// findPEM returns the first PEM block of type want in data.
func findPEM(data []byte, want string) (*pem.Block, error) {
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, fmt.Errorf("%w: want a %q block (make one with `fwctl keygen` or openssl)", ErrNoPEM, want)
		}
		if b.Type == want {
			return b, nil
		}
	}
}

// ParsePrivateKey decodes a PKCS#8 "PRIVATE KEY" PEM block holding an Ed25519 key.
func ParsePrivateKey(data []byte) (ed25519.PrivateKey, error) {
	b, err := findPEM(data, pemPrivate)
	if err != nil {
		if _, e := findPEM(data, pemPublic); e == nil {
			return nil, errors.New("parse private key: this is a public key file: pass the .key file, not the .pub file")
		}
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("parse private key: %w (got %T): make one with `openssl genpkey -algorithm ed25519`", ErrNotEd25519, k)
	}
	return priv, nil
}

// ParsePublicKey decodes a PKIX "PUBLIC KEY" PEM block holding an Ed25519 key.
func ParsePublicKey(data []byte) (ed25519.PublicKey, error) {
	b, err := findPEM(data, pemPublic)
	if err != nil {
		if _, e := findPEM(data, pemPrivate); e == nil {
			return nil, errors.New("parse public key: this is a private key file: pass the .pub file (never ship private keys to devices)")
		}
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	k, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("parse public key: %w (got %T)", ErrNotEd25519, k)
	}
	return pub, nil
}

func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("key file %s is larger than %d bytes: is it really a key?", path, maxKeyFile)
	}
	return data, nil
}

// LoadPrivateKey reads and parses a private key PEM file.
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	data, err := readKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("read private key: %w", err)
	}
	k, err := ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// LoadPublicKey reads and parses a public key PEM file.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	data, err := readKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("read public key: %w", err)
	}
	k, err := ParsePublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// WriteKeyPair writes priv to prefix+".key" (mode 0600) and its public key to
// prefix+".pub" (mode 0644), each atomically. It refuses to overwrite an
// existing file, so a signing key is never lost by a typo.
func WriteKeyPair(prefix string, priv ed25519.PrivateKey) (keyPath, pubPath string, err error) {
	keyPath, pubPath = prefix+".key", prefix+".pub"
	for _, p := range []string{keyPath, pubPath} {
		if _, err := os.Lstat(p); err == nil {
			return "", "", fmt.Errorf("%s already exists: choose another --out prefix or move the old key away", p)
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", "", fmt.Errorf("check %s: %w", p, err)
		}
	}
	if dir := filepath.Dir(keyPath); !isDir(dir) {
		return "", "", fmt.Errorf("the folder %s does not exist: create it first (mkdir -m 0700 %s), keys are never written to a folder made by accident", dir, dir)
	}
	privPEM, err := MarshalPrivateKey(priv)
	if err != nil {
		return "", "", err
	}
	pubPEM, err := MarshalPublicKey(priv.Public().(ed25519.PublicKey))
	if err != nil {
		return "", "", err
	}
	if err := renameio.WriteFile(keyPath, privPEM, 0o600); err != nil {
		return "", "", fmt.Errorf("write private key: %w", err)
	}
	if err := renameio.WriteFile(pubPath, pubPEM, 0o644); err != nil {
		return "", "", fmt.Errorf("write public key: %w", err)
	}
	return keyPath, pubPath, nil
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}
