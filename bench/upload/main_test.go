package main

import (
	"strings"
	"testing"
)

// The child uploads without the safety policy: it must refuse every URL
// but a loopback one, before it opens any connection.
func TestTheChildUploadsOnlyToALoopbackSimulator(t *testing.T) {
	for _, u := range []string{"http://192.0.2.10", "https://nvr.example:443", "http://localhost.example", "http://0.0.0.0:80", "::", ""} {
		err := upload(u, "/nonexistent", nil)
		if err == nil || !strings.Contains(err.Error(), "loopback") && !strings.Contains(err.Error(), "simulator URL") {
			t.Errorf("upload(%q) = %v, want a refusal naming the loopback rule", u, err)
		}
	}
	for _, u := range []string{"http://127.0.0.1:8080", "http://[::1]:80"} {
		if err := loopbackURL(u); err != nil {
			t.Errorf("loopbackURL(%q) = %v, want nil", u, err)
		}
	}
}
