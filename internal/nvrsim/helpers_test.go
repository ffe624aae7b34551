package nvrsim

import (
	"context"
	"encoding/xml"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fwagent/fwagent/internal/testimage"
	"github.com/icholy/digest"
)

const (
	testUser     = "admin"
	testPassword = "s3cret-pass"
)

// start runs a simulator for the test with the test credentials.
func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.User == "" {
		cfg.User = testUser
	}
	if cfg.Password == "" {
		cfg.Password = testPassword
	}
	if cfg.TempDir == "" {
		cfg.TempDir = t.TempDir()
	}
	srv, err := Start(cfg)
	if err != nil {
		t.Fatalf("start simulator: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

// client returns an HTTP client doing digest auth with icholy/digest, as
// the ISAPI backend does.
func client(user, password string) *http.Client {
	tr := &http.Transport{DisableKeepAlives: false}
	return &http.Client{Transport: &digest.Transport{Username: user, Password: password, Transport: tr, Probe: true}}
}

// waitFor waits until cond holds for the simulator's state.
func waitFor(t *testing.T, s *Sim, what string, cond func(State) bool) State {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Wait(ctx, cond); err != nil {
		t.Fatalf("waiting for %s: %v; state %+v", what, err, s.State())
	}
	return s.State()
}

// image writes a test image and returns its path.
func image(t *testing.T, spec testimage.Spec) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "digicap.dav")
	if _, _, err := testimage.WriteFile(p, spec); err != nil {
		t.Fatalf("write test image: %v", err)
	}
	return p
}

// do sends a request through c and returns the status and body.
func do(t *testing.T, c *http.Client, method, url string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, b
}

// putImage uploads path with PUT, streaming it from disk (GetBody reopens
// the file, so the digest transport never buffers it).
func putImage(c *http.Client, base, path string) (*http.Response, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequest(http.MethodPut, base+"/ISAPI/System/updateFirmware", f)
	if err != nil {
		return nil, err
	}
	req.ContentLength = fi.Size()
	req.Header.Set("Content-Type", "application/octet-stream")
	req.GetBody = func() (io.ReadCloser, error) { return os.Open(path) }
	return c.Do(req)
}

// postImage uploads path as multipart field updateFile, streamed through a
// pipe.
func postImage(c *http.Client, base, path string) (*http.Response, error) {
	body := func() (io.ReadCloser, string) {
		pr, pw := io.Pipe()
		mw := multipart.NewWriter(pw)
		_ = mw.SetBoundary("nvrsim-test-boundary-1234567890") // the same for every retry
		go func() {
			part, err := mw.CreateFormFile("updateFile", "digicap.dav")
			if err == nil {
				var f *os.File
				if f, err = os.Open(path); err == nil {
					_, err = io.Copy(part, f)
					f.Close()
				}
			}
			if err == nil {
				err = mw.Close()
			}
			pw.CloseWithError(err)
		}()
		return pr, mw.FormDataContentType()
	}
	rc, ct := body()
	req, err := http.NewRequest(http.MethodPost, base+"/ISAPI/System/updateFirmware", rc)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", ct)
	req.GetBody = func() (io.ReadCloser, error) { rc, _ := body(); return rc, nil }
	return c.Do(req)
}

// xmlStatus decodes a ResponseStatus.
func xmlStatus(t *testing.T, b []byte) ResponseStatus {
	t.Helper()
	var rs ResponseStatus
	if err := xml.Unmarshal(b, &rs); err != nil {
		t.Fatalf("not a ResponseStatus: %v\n%q", err, b)
	}
	return rs
}

// readAll reads and closes a response body.
func readAll(t *testing.T, res *http.Response) []byte {
	t.Helper()
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// containsAll reports whether s contains every one of subs.
func containsAll(s string, subs ...string) bool {
	for _, x := range subs {
		if !strings.Contains(s, x) {
			return false
		}
	}
	return true
}
