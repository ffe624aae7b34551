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
	device      string // a site's recorder: the device label of every sample
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

// NewDeviceMetrics returns empty metrics for one recorder of a site: every
// sample carries device="NAME"; serve a site's with SiteMetrics.
func NewDeviceMetrics(version, device string) *Metrics {
	m := NewMetrics(version)
	m.device = device
	return m
}

// SiteMetrics serves the metrics of every recorder of a site as one
// exposition: each family once, one sample per recorder with its device
// label.
type SiteMetrics []*Metrics

// WriteTo writes the metrics in the Prometheus text exposition format 0.0.4.
func (s SiteMetrics) WriteTo(w io.Writer) (int64, error) { return writeMetrics(w, s) }

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
func (m *Metrics) WriteTo(w io.Writer) (int64, error) { return writeMetrics(w, []*Metrics{m}) }

// metricsSnapshot is one Metrics read under its lock.
type metricsSnapshot struct {
	device, version      string
	attempts, downloaded uint64
	last                 time.Time
	keys                 []resultKey
	results              map[resultKey]uint64
}

func (m *Metrics) snapshot() metricsSnapshot {
	m.mu.Lock()
	sn := metricsSnapshot{device: m.device, version: m.version, attempts: m.attempts, downloaded: m.downloaded, last: m.lastSuccess,
		results: make(map[resultKey]uint64, len(m.results))}
	for k, v := range m.results {
		sn.keys = append(sn.keys, k)
		sn.results[k] = v
	}
	m.mu.Unlock()
	sort.Slice(sn.keys, func(i, j int) bool {
		if sn.keys[i].result != sn.keys[j].result {
			return sn.keys[i].result < sn.keys[j].result
		}
		return sn.keys[i].code < sn.keys[j].code
	})
	return sn
}

// labels renders a sample's labels with the device label first (when set).
func (sn metricsSnapshot) labels(kv ...string) string {
	var parts []string
	if sn.device != "" {
		parts = append(parts, fmt.Sprintf("device=\"%s\"", escapeLabel(sn.device)))
	}
	for i := 0; i+1 < len(kv); i += 2 {
		parts = append(parts, fmt.Sprintf("%s=\"%s\"", kv[i], escapeLabel(kv[i+1])))
	}
	if len(parts) == 0 {
		return ""
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func writeMetrics(w io.Writer, ms []*Metrics) (int64, error) {
	sns := make([]metricsSnapshot, len(ms))
	for i, m := range ms {
		sns[i] = m.snapshot()
	}
	cw := &countWriter{w: bufio.NewWriter(w)}
	family(cw, "fwagent_info", "gauge", "Agent version; the value is always 1.")
	for _, sn := range sns {
		fmt.Fprintf(cw, "fwagent_info%s 1\n", sn.labels("version", sn.version))
	}
	family(cw, "fwagent_update_attempts_total", "counter", "Update attempts started.")
	for _, sn := range sns {
		fmt.Fprintf(cw, "fwagent_update_attempts_total%s %d\n", sn.labels(), sn.attempts)
	}
	family(cw, "fwagent_update_results_total", "counter", "Update attempt outcomes by result and reason code.")
	for _, sn := range sns {
		for _, k := range sn.keys {
			fmt.Fprintf(cw, "fwagent_update_results_total%s %d\n", sn.labels("result", k.result, "code", k.code), sn.results[k])
		}
	}
	family(cw, "fwagent_download_bytes_total", "counter", "Firmware image bytes downloaded.")
	for _, sn := range sns {
		fmt.Fprintf(cw, "fwagent_download_bytes_total%s %d\n", sn.labels(), sn.downloaded)
	}
	family(cw, "fwagent_last_success_timestamp_seconds", "gauge", "Unix time of the last confirmed install; 0 if none.")
	for _, sn := range sns {
		ts := "0"
		if !sn.last.IsZero() {
			ts = strconv.FormatFloat(float64(sn.last.UnixMilli())/1000, 'f', -1, 64)
		}
		fmt.Fprintf(cw, "fwagent_last_success_timestamp_seconds%s %s\n", sn.labels(), ts)
	}
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
