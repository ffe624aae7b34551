package sqlite_test

import (
	"context"
	"database/sql"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/pressly/goose/v3"

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

func TestMigrationDropsCopiesOfImportedReports(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fleet.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sub, _ := fs.Sub(sqlite.Migrations, "migrations")
	storetest.MigrateImportCopies(t, db, goose.DialectSQLite3, sub, func(t *testing.T) fleet.Store {
		s, err := sqlite.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
