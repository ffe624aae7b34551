package agent

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/sirupsen/logrus"
)

// On a site's shared logger each line carries its own recorder's attempt
// ids, never another's; the hooks stay one each however many recorders.
func TestAttemptFieldsStayWithTheirRecorder(t *testing.T) {
	var buf bytes.Buffer
	l := logrus.New()
	l.Out, l.Formatter = &buf, &logrus.JSONFormatter{}
	a, b := &attemptFields{device: "rec-a"}, &attemptFields{device: "rec-b"}
	for _, f := range []*attemptFields{a, b} {
		addHooks(l).add(f)
	}
	if n := len(l.Hooks[logrus.InfoLevel]); n != 2 {
		t.Fatalf("%d hooks on the logger, want 2 (attempt fields, redaction)", n)
	}
	a.set("rel-1", "att-a")
	a.setStep("upload")
	b.set("rel-1", "att-b")
	l.WithField("device", "rec-a").Info("one")
	l.WithField("device", "rec-b").Info("two")
	l.WithField("device", "rec-c").Info("three")
	addHooks(l).remove(a)
	l.WithField("device", "rec-a").Info("four")
	want := []map[string]string{
		{"attempt": "att-a", "step": "upload"},
		{"attempt": "att-b", "step": ""},
		{"attempt": "", "step": ""},
		{"attempt": "", "step": ""},
	}
	dec := json.NewDecoder(&buf)
	for i, w := range want {
		var line map[string]any
		if err := dec.Decode(&line); err != nil {
			t.Fatal(err)
		}
		for k, v := range w {
			if got, _ := line[k].(string); got != v {
				t.Errorf("line %d (%v): %s = %q, want %q", i+1, line["msg"], k, got, v)
			}
		}
	}
}
