package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestProgressOffATerminalPrintsALinePerTenPercent(t *testing.T) {
	var out bytes.Buffer
	v := newProgressView(&out, false)
	for done := int64(0); done <= 1000; done += 7 {
		v.update("download", true, done, 1000)
	}
	v.update("download", true, 1000, 1000)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 10 || lines[0] != "download: 10% 100 B of 1000 B" || lines[9] != "download: 100% 1000 B of 1000 B" {
		t.Fatalf("want 10 lines from 10%% to 100%%, got %d:\n%s", len(lines), out.String())
	}

	// A resumed download at 35% prints from 40% on; a percent phase has no amounts.
	out.Reset()
	v = newProgressView(&out, false)
	v.update("download", true, 350, 1000)
	v.update("download", true, 1000, 1000)
	v.update("flash", false, 0, 100)
	v.update("flash", false, 50, 100)
	want := "download: 40% 400 B of 1000 B\ndownload: 50% 500 B of 1000 B\ndownload: 60% 600 B of 1000 B\n" +
		"download: 70% 700 B of 1000 B\ndownload: 80% 800 B of 1000 B\ndownload: 90% 900 B of 1000 B\n" +
		"download: 100% 1000 B of 1000 B\nflash: 10%\nflash: 20%\nflash: 30%\nflash: 40%\nflash: 50%\n"
	if out.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", out.String(), want)
	}
}

func TestProgressRateCountsOnlyThisRunsBytes(t *testing.T) {
	var out bytes.Buffer
	v := newProgressView(&out, true)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	v.now = func() time.Time { return now }
	// Resuming: 900 MiB were on disk before this run.
	v.update("download", true, 900<<20, 1<<30)
	if got := v.describe(900 << 20); strings.Contains(got, "/s") {
		t.Errorf("a rate before a second has passed: %q", got)
	}
	now = now.Add(2 * time.Second)
	if got := v.describe(920 << 20); !strings.HasSuffix(got, ", 10.0 MiB/s") {
		t.Errorf("describe = %q, want 20 MiB in 2 s = 10.0 MiB/s", got)
	}
	v.Finish()
}

func TestProgressOnATerminalPrintsLogLinesAboveTheBar(t *testing.T) {
	var out bytes.Buffer
	v := newProgressView(&out, true)
	v.update("download", true, 100, 1000)
	if _, err := v.Write([]byte("time=x level=info msg=\"downloading image\"\n")); err != nil {
		t.Fatal(err)
	}
	v.Finish()
	s := out.String()
	const line = "time=x level=info msg=\"downloading image\"\n"
	i := strings.Index(s, line)
	if i < 0 {
		t.Fatalf("log line missing or cut:\n%q", s)
	}
	// Before the line, the bar was cleared: the line starts at column 0.
	if before := s[:i]; !strings.HasSuffix(before, "\r") {
		t.Errorf("the bar was not cleared before the log line:\n%q", s)
	}
	if !strings.Contains(s[i+len(line):], "download") {
		t.Errorf("the bar was not drawn again below the log line:\n%q", s)
	}
}
