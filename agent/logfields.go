package agent

import (
	"sync"

	"github.com/sirupsen/logrus"
)

// attemptFields is a logrus hook that stamps the step running and the
// release and attempt ids of the update in progress on every log line that
// lacks them, so the lines the
// downloader and the device backend write during an attempt can be found
// with fwagent logs --release / --attempt like the agent's own. The agent
// runs one attempt at a time, so one pair of ids is enough.
type attemptFields struct {
	mu                     sync.Mutex
	release, attempt, step string
	// device, when set, limits the hook to the lines of that recorder: the
	// agents of a site share one logger, and one recorder's ids must never
	// land on another's lines.
	device string
}

func (h *attemptFields) setStep(step string) {
	h.mu.Lock()
	h.step = step
	h.mu.Unlock()
}

func (h *attemptFields) set(release, attempt string) {
	h.mu.Lock()
	h.release, h.attempt = release, attempt
	h.mu.Unlock()
}

// Levels is every level.
func (h *attemptFields) Levels() []logrus.Level { return logrus.AllLevels }

// Fire adds the ids to e.
func (h *attemptFields) Fire(e *logrus.Entry) error {
	h.mu.Lock()
	release, attempt, step := h.release, h.attempt, h.step
	h.mu.Unlock()
	if h.device != "" && e.Data["device"] != h.device {
		return nil
	}
	if _, ok := e.Data["step"]; !ok && step != "" {
		e.Data["step"] = step
	}
	if attempt == "" {
		return nil
	}
	if _, ok := e.Data["release"]; !ok {
		e.Data["release"] = release
	}
	if _, ok := e.Data["attempt"]; !ok {
		e.Data["attempt"] = attempt
	}
	return nil
}
