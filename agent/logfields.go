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
	// device names the recorder ("" for an agent of one): the agents of a
	// site share one logger and one fieldsByDevice hook, which gives each
	// line to the fields of the recorder the line names, so one recorder's
	// ids never land on another's lines.
	device string
}

// fieldsByDevice is the one hook on a logger that gives each line to the
// attempt fields of its recorder (the line's "device" field): a line costs
// one lookup, not one hook per recorder of the site.
type fieldsByDevice struct {
	mu       sync.RWMutex
	byDevice map[string]*attemptFields
}

// Levels is every level.
func (h *fieldsByDevice) Levels() []logrus.Level { return logrus.AllLevels }

// Fire stamps e with its recorder's attempt fields; an agent of one (no
// name) stamps every line, whatever device a backend names in it.
func (h *fieldsByDevice) Fire(e *logrus.Entry) error {
	dev, _ := e.Data["device"].(string)
	h.mu.RLock()
	f, ok := h.byDevice[dev]
	if !ok {
		f = h.byDevice[""]
	}
	h.mu.RUnlock()
	if f == nil {
		return nil
	}
	return f.Fire(e)
}

func (h *fieldsByDevice) add(f *attemptFields) {
	h.mu.Lock()
	h.byDevice[f.device] = f
	h.mu.Unlock()
}

// remove forgets f (when its agent closes), unless another took its place.
func (h *fieldsByDevice) remove(f *attemptFields) {
	h.mu.Lock()
	if h.byDevice[f.device] == f {
		delete(h.byDevice, f.device)
	}
	h.mu.Unlock()
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

// Fire adds the ids to e (fieldsByDevice calls it for the lines of its
// recorder).
func (h *attemptFields) Fire(e *logrus.Entry) error {
	h.mu.Lock()
	release, attempt, step := h.release, h.attempt, h.step
	h.mu.Unlock()
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
