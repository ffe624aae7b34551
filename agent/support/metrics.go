package support

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Metrics counts what the agent did, for GET /metrics in the Prometheus text
// exposition format. It is safe for concurrent use; the zero value is not
// usable, call NewMetrics.
type Metrics struct {
	mu          sync.Mutex
	version     string
	attempts    uint64
	results     map[resultKey]uint64
	downloaded  uint64
	lastSuccess time.Time
}

type resultKey struct{ result, code string }

// NewMetrics returns empty metrics for an agent of the given version.
func NewMetrics(version string) *Metrics {
	return &Metrics{version: version, results: map[resultKey]uint64{}}
}

// AttemptStarted counts one update attempt.
func (m *Metrics) AttemptStarted() {
	m.mu.Lock()
	m.attempts++
	m.mu.Unlock()
}

// Result counts the outcome of an attempt: result is "success", "failure" or
// "refused"; code is the reason code ("" for a success).
func (m *Metrics) Result(result, code string) {
	m.mu.Lock()
	m.results[resultKey{result, code}]++
	m.mu.Unlock()
}

// AddDownloadBytes counts image bytes received.
func (m *Metrics) AddDownloadBytes(n int64) {
	if n <= 0 {
		return
	}
	m.mu.Lock()
	m.downloaded += uint64(n)
	m.mu.Unlock()
}

// SetLastSuccess records when an install was last confirmed.
func (m *Metrics) SetLastSuccess(t time.Time) {
	m.mu.Lock()
	m.lastSuccess = t
	m.mu.Unlock()
}

// WriteTo writes the metrics in the Prometheus text exposition format 0.0.4.
func (m *Metrics) WriteTo(w io.Writer) (int64, error) {
	m.mu.Lock()
	keys := make([]resultKey, 0, len(m.results))
	for k := range m.results {
		keys = append(keys, k)
	}
	results := make(map[resultKey]uint64, len(m.results))
	for k, v := range m.results {
		results[k] = v
	}
	attempts, downloaded, last, version := m.attempts, m.downloaded, m.lastSuccess, m.version
	m.mu.Unlock()
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].result != keys[j].result {
			return keys[i].result < keys[j].result
		}
		return keys[i].code < keys[j].code
	})

	cw := &countWriter{w: bufio.NewWriter(w)}
	family(cw, "fwagent_info", "gauge", "Agent version; the value is always 1.")
	fmt.Fprintf(cw, "fwagent_info{version=\"%s\"} 1\n", escapeLabel(version))
	family(cw, "fwagent_update_attempts_total", "counter", "Update attempts started.")
	fmt.Fprintf(cw, "fwagent_update_attempts_total %d\n", attempts)
	family(cw, "fwagent_update_results_total", "counter", "Update attempt outcomes by result and reason code.")
	for _, k := range keys {
		fmt.Fprintf(cw, "fwagent_update_results_total{result=\"%s\",code=\"%s\"} %d\n", escapeLabel(k.result), escapeLabel(k.code), results[k])
	}
	family(cw, "fwagent_download_bytes_total", "counter", "Firmware image bytes downloaded.")
	fmt.Fprintf(cw, "fwagent_download_bytes_total %d\n", downloaded)
	family(cw, "fwagent_last_success_timestamp_seconds", "gauge", "Unix time of the last confirmed install; 0 if none.")
	ts := "0"
	if !last.IsZero() {
		ts = strconv.FormatFloat(float64(last.UnixMilli())/1000, 'f', -1, 64)
	}
	fmt.Fprintf(cw, "fwagent_last_success_timestamp_seconds %s\n", ts)
	if cw.err == nil {
		cw.err = cw.w.Flush()
	}
	return cw.n, cw.err
}

func family(w io.Writer, name, typ, help string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

// escapeLabel escapes a label value: backslash, double quote and newline.
func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// countWriter counts bytes and keeps the first error.
type countWriter struct {
	w   *bufio.Writer
	n   int64
	err error
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}
