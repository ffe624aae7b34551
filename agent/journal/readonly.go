package journal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/fwagent/fwagent/internal/statefile"
)

// OpenReadOnly reads the journal in dir without taking the lock, for views
// that must work while the daemon runs (fwagent check, fwagent status). Its
// State is a snapshot; every write returns ErrClosed. A missing directory or
// journal.json reads as an empty journal.
func OpenReadOnly(dir string) (*Journal, error) {
	discard := logrus.New()
	discard.Out = io.Discard
	j := &Journal{Now: time.Now, Logger: discard, HistoryMax: DefaultHistoryMax, dir: dir, state: State{Version: Version}, writeFile: statefile.Write}
	path := filepath.Join(dir, stateFile)
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return j, nil
	case err != nil:
		return nil, fmt.Errorf("read journal: %w", err)
	}
	st, err := ParseState(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
	}
	j.state = st
	return j, nil
}
