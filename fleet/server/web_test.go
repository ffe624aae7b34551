package server_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/fwagent/fwagent/fleet"
	"github.com/fwagent/fwagent/fleet/server"
)

// browser starts Debian's chromium headless with a temporary profile; it
// fails under CI without it (CI installs chromium) and skips elsewhere.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("no chromium: CI must install Debian's chromium (apt-get install -y chromium)")
		}
		t.Skip("no chromium on PATH: apt-get install -y chromium to run the browser test (CI fails here)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelB(); cancelA() })
	// The first action starts the browser; it gets no timeout of its own
	// (that would stop the browser with it).
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// within bounds one browser step: a page that never shows what a test
// waits for fails the test instead of hanging it.
func within(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, 30*time.Second)
}

func TestWebPageInAHeadlessBrowser(t *testing.T) {
	ctx := browser(t)
	f := newFixture(t, sqliteStore(t), server.Options{Enrolment: server.EnrolOpen, PageRefresh: time.Second, HoldCacheTTL: time.Nanosecond})
	base := strings.Replace(f.http.URL, "http://", "http://admin:"+adminToken+"@", 1)

	// A device that just checked in is on the page.
	a := f.agent("NVR-0001")
	if _, err := a.checkIn(func(c *fleet.CheckIn) {
		c.Site, c.DeviceName, c.Step, c.ReleaseID, c.Progress = "site-a", "gate", "download", "r1", 40
	}); err != nil {
		t.Fatal(err)
	}
	// A release that only reports name is listed with its counts.
	if err := a.report("r2", "confirm", fleet.ResultInstalled); err != nil {
		t.Fatal(err)
	}
	step, cancel := within(ctx)
	defer cancel()
	if err := chromedp.Do(step, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#device-NVR-0001")), chromedp.WaitVisible(chromedp.CSS("#release-r2"))); err != nil {
		t.Fatal(err)
	}
	row, err := chromedp.Run(step, chromedp.Text(chromedp.CSS("#device-NVR-0001")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"NVR-0001", "site-a / gate", "updating", "download r1 40%"} {
		if !strings.Contains(row, want) {
			t.Errorf("device row %q lacks %q", row, want)
		}
	}

	// A pause shows within one refresh, without reloading by hand.
	if st := f.admin("POST", "/v1/admin/releases/r1/pause", server.PauseRequest{Cause: "site B badFlash"}, nil); st != http.StatusOK {
		t.Fatalf("pause: %d", st)
	}
	step2, cancel2 := within(ctx)
	defer cancel2()
	if err := chromedp.Do(step2, chromedp.WaitVisible(chromedp.CSS("#paused-r1"))); err != nil {
		t.Fatalf("the pause did not show after the page reloaded: %v", err)
	}
	paused, err := chromedp.Run(step2, chromedp.Text(chromedp.CSS("#paused-r1")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(paused, "site B badFlash") || !strings.Contains(paused, "tester@host") {
		t.Errorf("pause shown as %q", paused)
	}

	// One device's history.
	step3, cancel3 := within(ctx)
	defer cancel3()
	if err := chromedp.Do(step3, chromedp.Navigate(base+"/device/NVR-0001"), chromedp.WaitVisible(chromedp.CSS("#history"))); err != nil {
		t.Fatal(err)
	}
	history, err := chromedp.Run(step3, chromedp.Text(chromedp.CSS("#history")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(history, "enrolled") || !strings.Contains(history, "step download of r1") {
		t.Errorf("history %q", history)
	}
}

func TestWebPageNeedsTheAdminToken(t *testing.T) {
	f := newFixture(t, sqliteStore(t), server.Options{})
	resp, err := http.Get(f.http.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "Basic") {
		t.Fatalf("page without the token: %d %v", resp.StatusCode, resp.Header)
	}
	req, _ := http.NewRequest("GET", f.http.URL+"/", nil)
	req.SetBasicAuth("me", adminToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Fatalf("page with the token: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestWebPageOpensWithTheViewerToken(t *testing.T) {
	const viewer = "viewer-token-0123456789abcdef"
	f := newFixture(t, sqliteStore(t), server.Options{ViewerToken: viewer})
	for tok, want := range map[string]int{viewer: 200, "not-a-token-0123456789": 401} {
		req, _ := http.NewRequest("GET", f.http.URL+"/", nil)
		req.SetBasicAuth("support", tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("page with password %q: %d, want %d", tok, resp.StatusCode, want)
		}
	}
}
