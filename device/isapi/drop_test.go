package isapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fwagent/fwagent/device"
	"github.com/fwagent/fwagent/internal/testimage"
)

const finishedFlash = `<upgradeStatus xmlns="http://www.isapi.org/ver20/XMLSchema"><upgrading>false</upgrading><percent>100</percent></upgradeStatus>`

// fakeRecorder is a recorder without authentication whose upload and
// upgradeStatus handlers a test chooses. It counts upgradeStatus requests.
type fakeRecorder struct {
	upload   http.HandlerFunc
	status   http.HandlerFunc
	statuses atomic.Int32
}

func (f *fakeRecorder) start(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case PathDeviceInfo:
			io.WriteString(w, okDeviceInfo)
		case PathUpdateFirmware:
			f.upload(w, r)
		case PathUpgradeStatus:
			f.statuses.Add(1)
			if f.status != nil {
				f.status(w, r)
				return
			}
			io.WriteString(w, finishedFlash)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// hangUp closes the connection at once, without reading the request body.
func hangUp(t *testing.T, w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		t.Error(err)
		return
	}
	conn.Close()
}

func TestAFinishedFlashIsTrustedOnlyAfterTheWholeImageWasSent(t *testing.T) {
	t.Run("an upload cut before the end is a transient failure even if the device reports a finished flash", func(t *testing.T) {
		f := &fakeRecorder{upload: func(w http.ResponseWriter, r *http.Request) { hangUp(t, w) }}
		srv := f.start(t)
		// Far more than loopback socket buffers hold: the client cannot
		// have sent it all when the device hangs up without reading.
		path, _ := writeImage(t, testimage.Spec{Model: protected, Version: "4.1.25", Variant: "custom", Size: 16 << 20})
		c, _ := newTestClient(t, srv.URL, nil)
		err := c.Install(testCtx(t), path, nil)
		if err == nil || !device.IsTransient(err) || !errors.Is(err, device.ErrUnreachable) {
			t.Fatalf("err = %v, want a transient unreachable error", err)
		}
		if !strings.Contains(err.Error(), "did not get the whole image") {
			t.Errorf("err = %v, want it to say the image was not sent whole", err)
		}
		if n := f.statuses.Load(); n != 0 {
			t.Errorf("upgradeStatus asked %d times, want none: its answer cannot be about this upload", n)
		}
	})
	t.Run("an upload that never reached the device is a transient failure even if the device reports a finished flash", func(t *testing.T) {
		f := &fakeRecorder{}
		srv := f.start(t)
		c, _ := newTestClient(t, srv.URL, nil)
		// A real dial error, as the upload would get from a closed port.
		dead, _ := newTestClient(t, closedURL(t), func(cfg *Config) { cfg.RetryMax = 0 })
		_, _, dialErr := dead.do(testCtx(t), dead.once, http.MethodGet, PathUpdateFirmware)
		if !isDialError(dialErr) {
			t.Fatalf("setup: %v is not a dial error", dialErr)
		}
		err := c.afterDrop(testCtx(t), dialErr, 4096, 4096, func(device.InstallProgress) {})
		if err == nil || !device.IsTransient(wrap("install", err)) || !errors.Is(err, device.ErrUnreachable) {
			t.Fatalf("err = %v, want a transient unreachable error", err)
		}
		if n := f.statuses.Load(); n != 0 {
			t.Errorf("upgradeStatus asked %d times, want none", n)
		}
	})
}

func TestFlashTimeoutDuringAStatusRequestKeepsItsAdvice(t *testing.T) {
	blockStatus := func(arrived chan<- struct{}) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			select {
			case arrived <- struct{}{}:
			default:
			}
			<-r.Context().Done() // the device never answers the poll
		}
	}
	acceptUpload := func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		io.WriteString(w, `<ResponseStatus><statusCode>1</statusCode><statusString>OK</statusString></ResponseStatus>`)
	}
	path, _ := writeImage(t, testimage.Spec{Model: protected, Version: "4.1.25", Variant: "custom"})

	t.Run("flash_timeout running out while a poll is in flight is a flashTimeout that says not to power off", func(t *testing.T) {
		f := &fakeRecorder{upload: acceptUpload, status: blockStatus(make(chan struct{}, 1))}
		srv := f.start(t)
		c, _ := newTestClient(t, srv.URL, func(cfg *Config) { cfg.FlashTimeout = 50 * time.Millisecond })
		err := c.Install(testCtx(t), path, nil)
		var de *device.Error
		if !errors.As(err, &de) || de.Op != "install" || de.Code != "flashTimeout" || de.Transient {
			t.Fatalf("err = %#v (%v), want a fatal flashTimeout", err, err)
		}
		if !strings.Contains(err.Error(), "do not power it off") {
			t.Errorf("err = %v, want the advice not to power the device off", err)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want no raw context deadline", err)
		}
	})
	t.Run("the caller cancelling during a poll is a cancellation, not a flash timeout", func(t *testing.T) {
		arrived := make(chan struct{}, 1)
		f := &fakeRecorder{upload: acceptUpload, status: blockStatus(arrived)}
		srv := f.start(t)
		c, _ := newTestClient(t, srv.URL, nil)
		ctx, cancel := context.WithCancel(testCtx(t))
		defer cancel()
		go func() {
			<-arrived
			cancel()
		}()
		err := c.Install(ctx, path, nil)
		var de *device.Error
		if !errors.Is(err, context.Canceled) || (errors.As(err, &de) && de.Code == "flashTimeout") {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	})
}
