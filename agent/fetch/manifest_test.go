package fetch

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fwagent/fwagent/agent/fetch/fetchtest"
)

func fastFetcher() *Fetcher {
	return &Fetcher{HTTP: NewHTTPClient(ClientOptions{RetryMax: 3, RetryWaitMin: time.Millisecond, RetryWaitMax: 2 * time.Millisecond})}
}

const lastMod = "Sat, 01 Nov 2025 10:00:00 GMT"

func TestFetchManifestConditionally(t *testing.T) {
	body := []byte(`{"payloadType":"application/vnd.fwagent.manifest+json"}`)
	tests := []struct {
		name         string
		cond         Conditional
		wantNotMod   bool
		wantIfNone   string
		wantIfModSin string
	}{
		{"a first fetch gets the body and validators", Conditional{}, false, "", ""},
		{"a matching ETag costs one request answered 304", Conditional{ETag: `"v1"`}, true, `"v1"`, ""},
		{"a matching Last-Modified costs one request answered 304", Conditional{LastModified: lastMod}, true, "", lastMod},
		{"a stale ETag gets the new body", Conditional{ETag: `"v0"`}, false, `"v0"`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := fetchtest.New(t, fetchtest.Options{Body: body, ETag: `"v1"`, LastModified: lastMod})
			res, err := fastFetcher().Fetch(context.Background(), []string{srv.URL + "/manifest.json"}, tc.cond)
			if err != nil {
				t.Fatalf("fetch: %v", err)
			}
			reqs := srv.Requests()
			if len(reqs) != 1 || reqs[0].IfNoneMatch != tc.wantIfNone || reqs[0].IfModifiedSince != tc.wantIfModSin {
				t.Fatalf("requests = %+v, want one with the validators", reqs)
			}
			if res.NotModified != tc.wantNotMod || res.ETag != `"v1"` || res.LastModified != lastMod {
				t.Errorf("result = %+v", res)
			}
			if tc.wantNotMod && (res.Body != nil || srv.BytesSent() != 0) {
				t.Errorf("a 304 brought %d bytes of body", srv.BytesSent())
			}
			if !tc.wantNotMod && string(res.Body) != string(body) {
				t.Errorf("body = %q", res.Body)
			}
		})
	}
}

func TestFetchManifestRetriesAndFailsOver(t *testing.T) {
	body := []byte(`{}`)
	tests := []struct {
		name      string
		status    []int
		wantReqs  int
		wantErr   bool
		transient bool
	}{
		{"a 503 is retried", []int{503}, 2, false, false},
		{"a 408 is retried", []int{408}, 2, false, false},
		{"a 429 is retried", []int{429}, 2, false, false},
		{"a 404 is not retried", []int{404}, 1, true, false},
		{"a 403 is not retried", []int{403}, 1, true, false},
		{"a 500 that persists gives up after the retries", []int{500, 500, 500, 500, 500}, 4, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := fetchtest.New(t, fetchtest.Options{Body: body, Status: tc.status})
			_, err := fastFetcher().Fetch(context.Background(), []string{srv.URL}, Conditional{})
			if (err != nil) != tc.wantErr || len(srv.Requests()) != tc.wantReqs {
				t.Fatalf("err = %v after %d requests, want error %v after %d", err, len(srv.Requests()), tc.wantErr, tc.wantReqs)
			}
			if err != nil && (IsTransient(err) != tc.transient || CodeOf(err) != CodeStatus) {
				t.Errorf("err = %v: transient %v code %s", err, IsTransient(err), CodeOf(err))
			}
		})
	}
	t.Run("a failing first url falls over to the second", func(t *testing.T) {
		bad := fetchtest.New(t, fetchtest.Options{Status: []int{404}})
		good := fetchtest.New(t, fetchtest.Options{Body: body})
		res, err := fastFetcher().Fetch(context.Background(), []string{bad.URL, good.URL}, Conditional{})
		if err != nil || res.URL != good.URL || string(res.Body) != "{}" {
			t.Fatalf("res = %+v err = %v", res, err)
		}
	})
	t.Run("when every url fails the error names them all", func(t *testing.T) {
		a := fetchtest.New(t, fetchtest.Options{Status: []int{404}})
		b := fetchtest.New(t, fetchtest.Options{Status: []int{410}})
		_, err := fastFetcher().Fetch(context.Background(), []string{a.URL, b.URL}, Conditional{})
		if err == nil || !strings.Contains(err.Error(), a.URL) || !strings.Contains(err.Error(), b.URL) || IsTransient(err) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestFetchManifestIsSizeCapped(t *testing.T) {
	big := []byte(strings.Repeat("x", 2048))
	for _, tc := range []struct {
		name string
		opts fetchtest.Options
	}{
		{"a Content-Length over the cap is refused unread", fetchtest.Options{Body: big}},
		{"a chunked body over the cap is refused", fetchtest.Options{Body: big, NoContentLength: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := fetchtest.New(t, tc.opts)
			f := fastFetcher()
			f.MaxSize = 1024
			_, err := f.Fetch(context.Background(), []string{srv.URL}, Conditional{})
			if CodeOf(err) != CodeTooLarge || !errors.Is(err, ErrTooLarge) || IsTransient(err) {
				t.Fatalf("err = %v, want too_large", err)
			}
		})
	}
	t.Run("a body exactly at the cap is accepted", func(t *testing.T) {
		srv := fetchtest.New(t, fetchtest.Options{Body: big[:1024], NoContentLength: true})
		f := fastFetcher()
		f.MaxSize = 1024
		if _, err := f.Fetch(context.Background(), []string{srv.URL}, Conditional{}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestFetchManifestFromFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "manifest.json")
	os.WriteFile(path, []byte(`{"v":1}`), 0o644)
	f := fastFetcher()
	first, err := f.Fetch(context.Background(), []string{"file://" + path}, Conditional{})
	if err != nil || string(first.Body) != `{"v":1}` || first.ETag == "" {
		t.Fatalf("first = %+v err = %v", first, err)
	}
	again, err := f.Fetch(context.Background(), []string{"file://" + path}, Conditional{ETag: first.ETag})
	if err != nil || !again.NotModified || again.Body != nil {
		t.Fatalf("an unchanged file should be not modified: %+v err = %v", again, err)
	}
	os.WriteFile(path, []byte(`{"v":22}`), 0o644)
	later := time.Now().Add(time.Minute)
	os.Chtimes(path, later, later)
	changed, err := f.Fetch(context.Background(), []string{"file://" + path}, Conditional{ETag: first.ETag})
	if err != nil || changed.NotModified || string(changed.Body) != `{"v":22}` {
		t.Fatalf("a changed file should be read: %+v err = %v", changed, err)
	}

	bad := []struct {
		name, url string
		code      Code
	}{
		{"a missing file", "file://" + filepath.Join(dir, "none.json"), CodeLocalFile},
		{"a directory", "file://" + dir, CodeLocalFile},
		{"a relative path", "file:manifest.json", CodeBadRequest},
		{"a remote host", "file://server/share/m.json", CodeBadRequest},
		{"an unknown scheme", "gopher://x/m.json", CodeBadRequest},
	}
	for _, tc := range bad {
		t.Run(tc.name+" is refused with "+string(tc.code), func(t *testing.T) {
			_, err := f.Fetch(context.Background(), []string{tc.url}, Conditional{})
			if CodeOf(err) != tc.code {
				t.Fatalf("err = %v, want %s", err, tc.code)
			}
		})
	}
	t.Run("a file over the cap is refused", func(t *testing.T) {
		f := fastFetcher()
		f.MaxSize = 3
		_, err := f.Fetch(context.Background(), []string{"file://" + path}, Conditional{})
		if CodeOf(err) != CodeTooLarge {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestFetchManifestWithoutURLs(t *testing.T) {
	_, err := (&Fetcher{}).Fetch(context.Background(), nil, Conditional{})
	if CodeOf(err) != CodeBadRequest || !strings.Contains(err.Error(), "manifest.urls") {
		t.Fatalf("err = %v", err)
	}
}

func TestNewHTTPClientTakesTheProxyFromTheEnvironment(t *testing.T) {
	c := NewHTTPClient(ClientOptions{})
	tr, ok := c.HTTPClient.Transport.(*http.Transport)
	if !ok || tr.Proxy == nil {
		t.Fatalf("transport %T has no proxy function", c.HTTPClient.Transport)
	}
	if c.RetryMax != 0 || c.HTTPClient.Timeout != 0 || tr.ResponseHeaderTimeout != DefaultHeaderTimeout {
		t.Errorf("defaults not applied: %+v", c)
	}
	if NewHTTPClient(ClientOptions{RetryMax: -1}).RetryMax != 0 {
		t.Errorf("a negative RetryMax should mean no retries")
	}
}

func TestBackoffCapsRetryAfter(t *testing.T) {
	resp := &http.Response{StatusCode: 429, Header: http.Header{"Retry-After": []string{"86400"}}}
	if d := backoff(time.Millisecond, time.Second, 1, resp); d != time.Second {
		t.Fatalf("backoff = %s, want the 1s cap", d)
	}
}
