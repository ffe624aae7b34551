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
-- copies counted twice in the rollout statistics and the auto-pause, and
-- the report they repeat stays. Reports from agents (signed, de-duplicated
-- by their sequence numbers) are not touched.
DELETE FROM reports
WHERE key_id = 'import'
  AND id NOT IN (SELECT MIN(id) FROM reports WHERE key_id = 'import' GROUP BY report_id);
CREATE UNIQUE INDEX reports_imported ON reports (report_id) WHERE key_id = 'import';

-- +goose Down
DROP INDEX reports_imported;
