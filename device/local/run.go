package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"time"

	"github.com/fwagent/fwagent/device"
)

// maxLogLine caps one logged output line; maxCapture caps the stdout kept.
const (
	maxLogLine = 4096
	maxCapture = maxIdentity + 1
)

// run executes argv (no shell) bounded by timeout, logs every output line,
// calls onLine for each stdout line, and returns stdout (capped). Failures
// are *device.Error for op.
func (d *Device) run(ctx context.Context, op string, argv []string, timeout time.Duration, onLine func(string)) ([]byte, error) {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	setProcessGroup(cmd)
	cmd.WaitDelay = 5 * time.Second
	log := d.log.WithField("command", argv[0])
	log.WithField("args", len(argv)-1).Debug("running " + op + " command")
	var out bytes.Buffer
	var lastErr string
	stdout := &lineWriter{f: func(line string) {
		log.WithField("stream", "stdout").Info(line)
		if out.Len() < maxCapture {
			out.WriteString(line)
			out.WriteByte('\n')
		}
		if onLine != nil {
			onLine(line)
		}
	}}
	stderr := &lineWriter{f: func(line string) {
		log.WithField("stream", "stderr").Warn(line)
		lastErr = line
	}}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		code := device.CodeCommandFailed
		if errors.Is(err, exec.ErrNotFound) {
			code = "commandNotFound"
		}
		return nil, &device.Error{Op: op, Code: code, Err: fmt.Errorf("cannot start the %s command %s: %w", op, argv[0], err)}
	}
	err := cmd.Wait()
	stdout.Flush()
	stderr.Flush()
	log = log.WithField("seconds", time.Since(start).Seconds())
	if err == nil {
		log.Debug(op + " command finished")
		return out.Bytes(), nil
	}
	if parent.Err() != nil {
		return nil, &device.Error{Op: op, Err: parent.Err()}
	}
	if ctx.Err() != nil {
		return nil, &device.Error{Op: op, Code: device.CodeCommandTimeout, Transient: op != "install",
			Err: fmt.Errorf("the %s command %s did not finish within %s and was killed", op, argv[0], timeout)}
	}
	msg := fmt.Sprintf("the %s command %s failed: %v", op, argv[0], err)
	if lastErr != "" {
		msg += ": " + lastErr
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code := ee.ExitCode()
		log.WithField("exit_status", code).Error(op + " command failed")
		return nil, &device.Error{Op: op, Code: fmt.Sprintf("exit%d", code), Transient: code == ExitTempFail, Err: errors.New(msg)}
	}
	return nil, &device.Error{Op: op, Code: device.CodeCommandFailed, Err: errors.New(msg)}
}

// lineWriter calls f for every complete line written to it, long lines cut
// to maxLogLine; Flush hands over the last, unterminated line. exec.Cmd
// writes stdout and stderr from separate goroutines, so each stream has its
// own lineWriter and f must only touch state of its own stream, or the
// caller reads that state after Wait.
type lineWriter struct {
	mu   sync.Mutex
	f    func(string)
	line []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if room := maxLogLine - len(w.line); room > 0 {
			w.line = append(w.line, chunk[:min(len(chunk), room)]...)
		}
		if i < 0 {
			break
		}
		w.emit()
		p = p[i+1:]
	}
	return n, nil
}

func (w *lineWriter) emit() {
	w.f(string(bytes.TrimSuffix(w.line, []byte("\r"))))
	w.line = w.line[:0]
}

// Flush hands over a last line that had no newline.
func (w *lineWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.line) > 0 {
		w.emit()
	}
}
