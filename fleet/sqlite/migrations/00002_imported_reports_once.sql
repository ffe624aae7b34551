-- +goose Up
-- An imported report (key_id 'import': a line of an old reports file,
-- fwctl fleet import) is stored once per report id, whatever its serial:
-- report ids are random and unique per report, and the reports file
-- itself drops a repeated id whatever the serial, so importing two files
-- one by one stores what importing them joined would. The server inserts
-- imports with ON CONFLICT DO NOTHING on this index, so an import run
-- twice, or sent again after an answer was lost, stores nothing twice.
--
-- A database from before this migration may hold copies of imported
-- reports (an import run twice). Each copy after the first stored (the
-- lowest id) is deleted here, before the unique index is built: the
-- copies doubled the stored rows, the reports export and the auto-pause
-- check's work, and the report they repeat stays. Reports from agents
-- (signed, de-duplicated by their sequence numbers) are not touched. The
-- copies are found by numbering each report id's rows (one sort), not by
-- NOT IN over a subquery, which PostgreSQL runs once per row when the
-- ids do not fit in work_mem (hours for a few hundred thousand reports).
DELETE FROM reports
WHERE id IN (
    SELECT id FROM (
        SELECT id, row_number() OVER (PARTITION BY report_id ORDER BY id) AS n
        FROM reports WHERE key_id = 'import'
    ) numbered
    WHERE n > 1
);
CREATE UNIQUE INDEX reports_imported ON reports (report_id) WHERE key_id = 'import';

-- +goose Down
DROP INDEX reports_imported;
