package isapi

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fwagent/fwagent/device"
	"github.com/fwagent/fwagent/internal/nvrsim"
	"github.com/fwagent/fwagent/internal/testimage"
)

const okDeviceInfo = `<DeviceInfo xmlns="urn:psialliance-org"><model>M</model><firmwareVersion>V1</firmwareVersion></DeviceInfo>`

func TestBasicOnlyWhenAllowedAndOffered(t *testing.T) {
	var sawAuth atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); ok {
			sawAuth.Add(1)
			if u == "admin" && p == "admin12345" {
				io.WriteString(w, okDeviceInfo)
				return
			}
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="nvr"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()

	t.Run("a Basic-only device gets no password unless allow_basic is on", func(t *testing.T) {
		c, _ := newTestClient(t, srv.URL, nil)
		_, err := c.Identify(testCtx(t))
		if !errors.Is(err, ErrBasicNotAllowed) || sawAuth.Load() != 0 {
			t.Errorf("err = %v, credentials sent %d times; want ErrBasicNotAllowed and none", err, sawAuth.Load())
		}
	})
	t.Run("with allow_basic a Basic-only device is answered once", func(t *testing.T) {
		c, _ := newTestClient(t, srv.URL, func(cfg *Config) { cfg.AllowBasic = true })
		if _, err := c.Identify(testCtx(t)); err != nil || sawAuth.Load() != 1 {
			t.Errorf("err = %v, credentials sent %d times", err, sawAuth.Load())
		}
	})
	t.Run("a digest device is never sent Basic credentials", func(t *testing.T) {
		sim := startSim(t, nvrsim.Config{AllowBasic: true})
		var basic atomic.Int32
		h := sim.Handler()
		front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.Header.Get("Authorization"), "Basic") {
				basic.Add(1)
			}
			h.ServeHTTP(w, r)
		}))
		defer front.Close()
		c, _ := newTestClient(t, front.URL, func(cfg *Config) { cfg.AllowBasic = true; cfg.Password = "wrong" })
		_, err := c.Identify(testCtx(t))
		if !errors.Is(err, device.ErrBadCredentials) || basic.Load() != 0 || sim.State().TotalFailedLogins != 1 {
			t.Errorf("err = %v, basic %d, failed logins %d; want one failed digest login", err, basic.Load(), sim.State().TotalFailedLogins)
		}
	})
}

func TestAStaleNonceIsAnsweredOnceNotCountedAsBadCredentials(t *testing.T) {
	var mu sync.Mutex
	authed := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Header.Get("Authorization") == "" {
			w.Header().Set("WWW-Authenticate", `Digest realm="r", nonce="n0", qop="auth"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		authed++
		if authed == 1 {
			w.Header().Set("WWW-Authenticate", `Digest realm="r", nonce="n1", qop="auth", stale=TRUE`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		io.WriteString(w, okDeviceInfo)
	}))
	defer srv.Close()
	c, _ := newTestClient(t, srv.URL, nil)
	if _, err := c.Identify(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if authed != 2 {
		t.Errorf("authenticated requests = %d, want 2", authed)
	}
}

func TestA401IsNeverRetried(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("WWW-Authenticate", `Digest realm="r", nonce="n0", qop="auth"`)
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `<ResponseStatus><statusCode>4</statusCode><lockStatus>unlock</lockStatus><retryTimes>2</retryTimes></ResponseStatus>`)
	}))
	defer srv.Close()
	c, _ := newTestClient(t, srv.URL, func(cfg *Config) { cfg.RetryMax = 5 })
	_, err := c.Identify(testCtx(t))
	var de *device.Error
	if !errors.As(err, &de) || de.Code != "badCredentials" || de.Transient || !strings.Contains(err.Error(), "2 attempts left") {
		t.Errorf("err = %v, want fatal badCredentials with 2 attempts left", err)
	}
	if n.Load() != 2 {
		t.Errorf("requests = %d, want 2 (the challenge and one login)", n.Load())
	}
}

func TestTheImageIsSentOnceAndAuthenticated(t *testing.T) {
	sim := startSim(t, nvrsim.Config{})
	var mu sync.Mutex
	var bodies []int64
	h := sim.Handler()
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cr := &countingReader{r: r.Body}
		r.Body = cr
		h.ServeHTTP(w, r)
		mu.Lock()
		bodies = append(bodies, cr.n)
		mu.Unlock()
	}))
	defer front.Close()
	path, size := writeImage(t, testimage.Spec{Model: protected, Version: "4.1.25", Variant: "custom", Size: 1 << 20})
	c, _ := newTestClient(t, front.URL, nil)
	if err := c.Install(testCtx(t), path, nil); err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, b := range bodies {
		total += b
	}
	if total != size {
		t.Errorf("request bodies %v add up to %d bytes, want the image (%d) once", bodies, total, size)
	}
}

type countingReader struct {
	r io.ReadCloser
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingReader) Close() error { return c.r.Close() }

func TestNewRefusesBadConfigs(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"a url with credentials in it", Config{BaseURL: "http://admin:hunter2@192.0.2.1", Username: "a", Password: "b"}},
		{"a url with a path", Config{BaseURL: "http://192.0.2.1/ISAPI", Username: "a", Password: "b"}},
		{"a url without a scheme", Config{BaseURL: "192.0.2.1", Username: "a", Password: "b"}},
		{"no password", Config{BaseURL: "http://192.0.2.1", Username: "a"}},
		{"a pin and a CA file together", Config{BaseURL: "https://192.0.2.1", Username: "a", Password: "b", CAFile: "x", CertSHA256: strings.Repeat("0", 64)}},
		{"a pin over plain http", Config{BaseURL: "http://192.0.2.1", Username: "a", Password: "b", CertSHA256: strings.Repeat("0", 64)}},
		{"a malformed pin", Config{BaseURL: "https://192.0.2.1", Username: "a", Password: "b", CertSHA256: "abc"}},
		{"a missing CA file", Config{BaseURL: "https://192.0.2.1", Username: "a", Password: "b", CAFile: "/nonexistent/ca.pem"}},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			_, err := New(tt.cfg)
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("err = %v, want ErrConfig", err)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the password leaked into %q", err)
			}
		})
	}
}
