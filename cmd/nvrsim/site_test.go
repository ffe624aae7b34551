package main

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestSiteRunsAMixOfRecordersAndPrintsTheirDevicesList(t *testing.T) {
	out := &lines{ch: make(chan string, 100)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"site", "--mix", "2 x iDS-9632NXI-I8/16S 4.1.20 custom, iDS-9632NXI-I8/S 4.1.20 standard", "--log-level", "error"}, out, io.Discard)
	}()
	t.Cleanup(func() { cancel(); <-done })
	urls := map[string]string{}
	timeout := time.NewTimer(20 * time.Second)
	defer timeout.Stop()
	name := ""
	urlLine := regexp.MustCompile(`^url: (http://\S+)$`)
	for len(urls) < 3 {
		select {
		case l := <-out.ch:
			if n, ok := strings.CutPrefix(l, "- name: "); ok {
				name = strings.Fields(n)[0]
			}
			if m := urlLine.FindStringSubmatch(l); m != nil {
				urls[name] = m[1]
			}
		case err := <-done:
			t.Fatalf("nvrsim site stopped: %v", err)
		case <-timeout.C:
			t.Fatalf("nvrsim site printed %v", urls)
		}
	}
	res, err := http.Get(urls["nvr-3"] + "/debug/state")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(b), `"model": "iDS-9632NXI-I8/S"`) || !strings.Contains(string(b), `"variant": "standard"`) {
		t.Errorf("nvr-3 is %s", b)
	}
	if urls["nvr-1"] == urls["nvr-2"] {
		t.Error("two recorders on one address")
	}
}

func TestSiteRefusesABadMix(t *testing.T) {
	err := run(context.Background(), []string{"site", "--mix", "0 x M"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "not a count") {
		t.Fatalf("run = %v", err)
	}
}
