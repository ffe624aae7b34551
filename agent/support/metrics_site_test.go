package support

import (
	"strings"
	"testing"
)

func TestSiteMetricsLabelEachRecorder(t *testing.T) {
	a, b := NewDeviceMetrics("1.0", "hall"), NewDeviceMetrics("1.0", "yard")
	a.AttemptStarted()
	b.Result("failed", "badCredentials")
	var out strings.Builder
	if _, err := (SiteMetrics{a, b}).WriteTo(&out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{
		`fwagent_update_attempts_total{device="hall"} 1`,
		`fwagent_update_attempts_total{device="yard"} 0`,
		`fwagent_update_results_total{device="yard",result="failed",code="badCredentials"} 1`,
		`fwagent_info{device="hall",version="1.0"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s:\n%s", want, text)
		}
	}
	if strings.Count(text, "# TYPE fwagent_update_attempts_total") != 1 {
		t.Errorf("a family is written more than once:\n%s", text)
	}
}
