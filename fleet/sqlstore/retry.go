package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/fwagent/fwagent/fleet"
)

// The store's one retry. A pooled PostgreSQL connection whose session the
// server ended (a restart, pg_terminate_backend) stays in the pool until
// something uses it, and fails that; the pool's ping of a connection idle
// over a second catches most of them, not one used just before the
// restart. So a transaction or a read that failed only because its
// connection was lost runs once more, on a connection the pool has just
// proven alive, as long as the first try is certain to have changed
// nothing. Failure table:
//
//	error                                          Update        read
//	connection lost before COMMIT was sent         run again     run again
//	COMMIT never left this process                 run again     -
//	COMMIT answered by the end of the session,     returned      -
//	  or the connection broke after COMMIT was sent
//	anything else, or the caller's context ended   returned      returned
//
// A second failure is returned: the server answers 503 and the agent sends
// the message again later.

type retryKey struct{}

// IsRetry reports whether ctx is that of a retry after a lost connection:
// the pool must hand it a connection it has just proven alive (pinged), so
// that the retry does not meet a second connection from before a restart.
// fleet/postgres's pool asks it before handing out a connection.
func IsRetry(ctx context.Context) bool { return ctx.Value(retryKey{}) != nil }

func retrying(ctx context.Context) context.Context { return context.WithValue(ctx, retryKey{}, true) }

// mayRetry reports whether a try that failed with err may run once more:
// the caller still waits, and the error says the try changed nothing. A
// transaction commits only by its COMMIT, so before the COMMIT was sent
// (commit false) a lost connection is enough. An error of the COMMIT
// itself (commit true) is retried only if the COMMIT never left this
// process: one the server answered by ending the session, or sent on a
// connection that then broke, may have committed.
func (d Dialect) mayRetry(ctx context.Context, err error, commit bool) bool {
	if ctx.Err() != nil {
		return false
	}
	if commit {
		return d.unsent(err)
	}
	return d.connLost(err)
}

// connLost and unsent are ConnLost and Unsent, false where the dialect
// has none.
func (d Dialect) connLost(err error) bool { return d.ConnLost != nil && d.ConnLost(err) }
func (d Dialect) unsent(err error) bool   { return d.Unsent != nil && d.Unsent(err) }

// Update runs fn in one transaction. One that failed only because its
// connection was lost, certainly without committing, runs once more on a
// live connection (see the failure table above): fn may run twice, so
// what it decides must come from the transaction, and what it hands back
// it must set afresh at each call.
func (s *Store) Update(ctx context.Context, fn func(fleet.Tx) error) error {
	commit, err := s.update(ctx, fn)
	if err != nil && s.d.mayRetry(ctx, err, commit) {
		_, err = s.update(retrying(ctx), fn)
	}
	return err
}

// update is one try of Update; commit says err is the COMMIT's.
func (s *Store) update(ctx context.Context, fn func(fleet.Tx) error) (commit bool, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("begin a fleet database transaction: %w", err)
	}
	if err := fn(&txn{s: s, tx: tx}); err != nil {
		_ = tx.Rollback()
		return false, err
	}
	if err := tx.Commit(); err != nil {
		if s.d.connLost(err) && !s.d.unsent(err) {
			return true, fmt.Errorf("commit to the fleet database: %w: %w", fleet.ErrCommitUnknown, err)
		}
		return true, fmt.Errorf("commit to the fleet database: %w", err)
	}
	return false, nil
}

// read runs fn, a read outside any transaction, and once more on a live
// connection if the first try failed only because its connection was
// lost: a read changes nothing, so it may run twice whatever it sent.
func (s *Store) read(ctx context.Context, fn func(context.Context) error) error {
	err := fn(ctx)
	if err != nil && s.d.mayRetry(ctx, err, false) {
		err = fn(retrying(ctx))
	}
	return err
}

// query runs a read on the reader through read. pgx's database/sql
// driver reads the first row inside QueryContext, so a lost connection
// shows there and is retried; one lost while later rows are read fails
// the read.
func (s *Store) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	var rows *sql.Rows
	err := s.read(ctx, func(ctx context.Context) (err error) {
		rows, err = s.rd.QueryContext(ctx, q, args...)
		return err
	})
	return rows, err
}
