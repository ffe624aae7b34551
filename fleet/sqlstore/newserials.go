package sqlstore

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
)

// Locks on serials that have no device row yet (PostgreSQL).
//
// SELECT ... FOR UPDATE locks the rows it finds and nothing for a serial
// without one: two transactions enrolling the same new serial at once
// would each create it, and the later commit would overwrite the earlier
// key (open enrolment would then refuse the real device as forged). So,
// before it reads, DevicesForUpdate looks up which serials have no row
// and takes a transaction advisory lock on each of them: the second
// transaction waits until the first commits, and its read (a new
// statement, so under READ COMMITTED a new snapshot) sees the row the
// first one created.
//
// The order of the steps, the same in every transaction, is what keeps
// them free of deadlocks:
//
//  1. which serials have no row: a plain read, no lock;
//  2. the advisory locks, before any row lock: first the enrolment lock
//     (shared), then one per new serial in ascending key order, in one
//     statement over a sorted array (unnest yields it in order, so
//     nothing rests on when the planner evaluates a volatile function);
//  3. the existing rows, FOR UPDATE in serial order.
//
// A transaction waiting in step 2 holds no row lock, and advisory locks
// are all taken in one order, so no cycle of waits can form. A serial
// whose row exists in step 1 keeps it (devices are never deleted), so its
// row lock guards it; a transaction creates only rows it locked in step 2.
//
// Advisory locks take entries in PostgreSQL's shared lock table (about
// max_locks_per_transaction x max_connections, 6,400 by default, for
// every lock of every session); a bulk approval or import of thousands of
// new serials would exhaust it ("out of shared memory"). A transaction
// with more than maxSerialLocks new serials takes the enrolment lock
// exclusively instead, and no per-serial lock: it waits for the
// enrolments in flight and holds off new ones until it commits.
const (
	// serialLockClass is the first key (pg_locks.classid) of the lock on
	// one new serial; the second (objid) is a hash of the serial. Two
	// serials with the same hash only wait for each other.
	serialLockClass int32 = 0x66770001
	// enrolLockClass is the first key of the enrolment lock, (class, 0).
	enrolLockClass int32 = 0x66770002
	// maxSerialLocks bounds the per-serial locks of one transaction: with
	// 2 writers on each of 4 servers, 2,000 entries of the lock table.
	maxSerialLocks = 256
)

// serialLockKey is the second key of the lock on a new serial.
func serialLockKey(serial string) int32 {
	h := fnv.New32a()
	h.Write([]byte(serial))
	return int32(h.Sum32())
}

// lockNewSerials takes the advisory locks on those of serials that have
// no device row (steps 1 and 2 above).
func (t *txn) lockNewSerials(ctx context.Context, serials []string) error {
	if len(serials) == 0 {
		return nil
	}
	rows, err := t.tx.QueryContext(ctx, "SELECT serial FROM devices WHERE serial = ANY($1)", serials)
	if err != nil {
		return fmt.Errorf("look up new serials: %w", err)
	}
	known := make(map[string]bool, len(serials))
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return fmt.Errorf("look up new serials: %w", err)
		}
		known[s] = true
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("look up new serials: %w", err)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("look up new serials: %w", err)
	}
	var keys []int32
	for _, s := range serials {
		if !known[s] {
			keys = append(keys, serialLockKey(s))
		}
	}
	if len(keys) == 0 {
		return nil
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	if len(keys) > maxSerialLocks {
		if _, err := t.tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1::int4, 0)", enrolLockClass); err != nil {
			return fmt.Errorf("lock the enrolment of %d new serials: %w", len(keys), err)
		}
		return nil
	}
	if _, err := t.tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock_shared($1::int4, 0)", enrolLockClass); err != nil {
		return fmt.Errorf("lock the enrolment of new serials: %w", err)
	}
	if _, err := t.tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1::int4, k) FROM unnest($2::int4[]) AS k", serialLockClass, keys); err != nil {
		return fmt.Errorf("lock new serials: %w", err)
	}
	return nil
}
