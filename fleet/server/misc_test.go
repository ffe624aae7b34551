package server_test

import (
	"testing"

	"crypto/ed25519"
	"github.com/fwagent/fwagent/internal/pgtest"
	"net/http/httptest"
)

func ed25519Key() ed25519.PrivateKey {
	_, k, _ := ed25519.GenerateKey(nil)
	return k
}

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

func pgtestURL(t *testing.T) string { return pgtest.URL(t) }
