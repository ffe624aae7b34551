package lab

import (
	"testing"

	"github.com/fwagent/fwagent/internal/nvrsim"
)

func TestStartReturnsErrorsInsteadOfPanicking(t *testing.T) {
	_, err := Start(Options{Dir: t.TempDir(), Device: nvrsim.Config{Variant: "beta"}})
	if err == nil {
		t.Fatal("a bad simulator config started a lab")
	}
}
