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

func TestAStaleNonceOnTheUploadIsAnsweredOnceWithAFreshOne(t *testing.T) {
	tests := []struct {
		name        string
		expireTimes int32 // authenticated uploads whose nonce the device forgets first
		style       nvrsim.Faults
		wantErr     bool
		wantAuthed  int32
	}{
		{"a stale nonce on the PUT gets one fresh probe and one more upload", 1, nvrsim.Faults{}, false, 2},
		{"a stale nonce on the multipart POST gets one fresh probe and one more upload", 1, nvrsim.Faults{PutNotSupported: true}, false, 2},
		{"a nonce called stale twice is not answered a third time nor taken for a wrong password", 100, nvrsim.Faults{}, true, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim := startSim(t, nvrsim.Config{})
			sim.SetFaults(tt.style)
			var authed, expired atomic.Int32
			h := sim.Handler()
			front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				upload := r.URL.Path == PathUpdateFirmware && r.Header.Get("Authorization") != ""
				if upload && (r.Method != http.MethodPut || !tt.style.PutNotSupported) {
					authed.Add(1)
					if expired.Add(1) <= tt.expireTimes {
						sim.ExpireNonces() // the nonce just issued by the probe is now unknown
					}
				}
				h.ServeHTTP(w, r)
			}))
			defer front.Close()
			path, size := writeImage(t, testimage.Spec{Model: protected, Version: "4.1.25", Variant: "custom"})
			c, _ := newTestClient(t, front.URL, nil)
			var prog progressLog
			err := c.Install(testCtx(t), path, prog.add)
			st := sim.State()
			if tt.wantErr {
				var de *device.Error
				if !errors.Is(err, ErrStaleNonce) || errors.Is(err, device.ErrBadCredentials) || !errors.As(err, &de) || de.Code != "staleNonce" || !de.Transient {
					t.Fatalf("err = %v, want a transient staleNonce error, not refused credentials", err)
				}
				if st.Installs != 0 {
					t.Errorf("installs = %d, want none", st.Installs)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if st.Uploads != 1 || st.Installs != 1 || st.LastUpload.Bytes != size {
					t.Errorf("state = %+v, want one whole upload flashed", st)
				}
				if tt.style.PutNotSupported && st.LastUpload.Method != http.MethodPost {
					t.Errorf("last upload = %+v, want the multipart POST", st.LastUpload)
				}
				if up, ok := prog.last("upload"); !ok || up.Done != size {
					t.Errorf("last upload progress = %+v, want %d bytes", up, size)
				}
			}
			if n := authed.Load(); n != tt.wantAuthed {
				t.Errorf("authenticated uploads = %d, want %d", n, tt.wantAuthed)
			}
			if st.TotalFailedLogins != 0 {
				t.Errorf("failed logins = %d, want none: a stale nonce is no wrong password", st.TotalFailedLogins)
			}
		})
	}
}

func TestARequestCalledStaleTwiceIsNotRefusedCredentials(t *testing.T) {
	var authed atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stale := "FALSE"
		if r.Header.Get("Authorization") != "" {
			authed.Add(1)
			stale = "TRUE"
		}
		w.Header().Set("WWW-Authenticate", `Digest realm="r", nonce="n`+stale+`", qop="auth", stale=`+stale)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	c, _ := newTestClient(t, srv.URL, func(cfg *Config) { cfg.RetryMax = 3 })
	_, err := c.Identify(testCtx(t))
	var de *device.Error
	if !errors.Is(err, ErrStaleNonce) || errors.Is(err, device.ErrBadCredentials) || !errors.As(err, &de) || de.Code != "staleNonce" {
		t.Errorf("err = %v, want staleNonce, not refused credentials", err)
	}
	if n := authed.Load(); n != 2 {
		t.Errorf("authenticated requests = %d, want 2 (one answer to the stale nonce, never more, no retries)", n)
	}
}
