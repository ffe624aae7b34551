package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/fwagent/fwagent/fleet"
	"github.com/fwagent/fwagent/fleet/sqlite"
	"github.com/fwagent/fwagent/fleet/storetest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) fleet.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "fleet.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestReopenKeepsDataAndMigratesOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fleet.db")
	ctx := context.Background()
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, func(tx fleet.Tx) error {
		return tx.AddCounters(ctx, map[string]int64{"x": 1})
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if c, _ := s.Counters(ctx); c["x"] != 1 {
		t.Fatalf("counters after reopening: %v", c)
	}
}
