package main

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/fwagent/fwagent/agent"
	"github.com/fwagent/fwagent/device"
)

// progressView shows a cycle's download, upload and flash progress to the
// person who started it. On a terminal it is one bar redrawn in place, and
// log lines written through it (Write) appear above the bar; elsewhere (a
// pipe, cron, a journal) it prints one line per 10% of each phase.
type progressView struct {
	w   io.Writer
	tty bool
	now func() time.Time

	mu    sync.Mutex
	phase string // "download", "upload", "flash"
	bytes bool   // the phase counts bytes (else percent)
	total int64
	base  int64     // what was already done when the phase began (a resumed download)
	start time.Time // when the phase began
	tenth int       // the last 10% step printed (non-terminal)
	bar   *progressbar.ProgressBar
}

func newProgressView(w io.Writer, tty bool) *progressView {
	return &progressView{w: w, tty: tty, now: time.Now}
}

// attach routes the agent's progress callbacks to v.
func (v *progressView) attach(a *agent.Agent) {
	a.Downloader.Progress = func(done, total int64) { v.update("download", true, done, total) }
	a.InstallProgress = func(p device.InstallProgress) { v.update(p.Phase, p.Phase == "upload", p.Done, p.Total) }
}

// update records done of total for phase, starting a new phase (and bar)
// when the phase changes.
func (v *progressView) update(phase string, bytes bool, done, total int64) {
	if total <= 0 {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if phase != v.phase || total != v.total {
		v.finishLocked()
		v.phase, v.bytes, v.total, v.base, v.start, v.tenth = phase, bytes, total, done, v.now(), int(done*10/total)
		if v.tty {
			v.bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(v.w), progressbar.OptionSetWidth(30),
				progressbar.OptionSetPredictTime(false), progressbar.OptionSetElapsedTime(false),
				progressbar.OptionShowDescriptionAtLineEnd(), progressbar.OptionThrottle(100*time.Millisecond))
		}
	}
	done = min(done, total)
	if v.tty {
		v.bar.Describe(v.describe(done))
		_ = v.bar.Set64(done)
		return
	}
	for t := int(done * 10 / total); v.tenth < t; {
		v.tenth++
		fmt.Fprintf(v.w, "%s: %d%%%s\n", phase, v.tenth*10, v.amount(v.total*int64(v.tenth)/10))
	}
}

// describe is the bar's text: phase, amount and, once a second has passed,
// the rate of this run (bytes already on disk when it began do not count,
// so a resumed download does not start at an absurd speed).
func (v *progressView) describe(done int64) string {
	s := v.phase + v.amount(done)
	if el := v.now().Sub(v.start); v.bytes && el >= time.Second && done > v.base {
		s += fmt.Sprintf(", %s/s", humanBytes(float64(done-v.base)/el.Seconds()))
	}
	return s
}

// amount is " 12.0 MiB of 64.0 MiB" for byte phases, "" for percent phases.
func (v *progressView) amount(done int64) string {
	if !v.bytes {
		return ""
	}
	return fmt.Sprintf(" %s of %s", humanBytes(float64(done)), humanBytes(float64(v.total)))
}

func (v *progressView) finishLocked() {
	if v.bar != nil {
		_ = v.bar.Clear()
		v.bar = nil
	}
}

// Finish removes the bar, if any, at the end of the cycle.
func (v *progressView) Finish() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.finishLocked()
}

// Write prints a log line above the bar: the bar is cleared, the line
// written, and the bar drawn again below it.
func (v *progressView) Write(p []byte) (int, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.bar == nil {
		return v.w.Write(p)
	}
	_ = v.bar.Clear()
	n, err := v.w.Write(p)
	// The bar redraws itself at most every 100 ms (its throttle), which
	// would leave it off the screen after a line until the next update:
	// draw what it last drew again.
	_, _ = io.WriteString(v.w, v.bar.String()) // it starts with \r
	return n, err
}

// humanBytes formats n bytes in binary units: "512 B", "1.5 MiB".
func humanBytes(n float64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%.0f B", n)
	}
	div, exp := float64(unit), 0
	for n/div >= unit && exp < 4 {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", n/div, "KMGTP"[exp])
}
