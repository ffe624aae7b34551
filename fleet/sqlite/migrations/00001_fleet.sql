-- +goose Up
CREATE TABLE devices (
    serial           TEXT PRIMARY KEY,
    enrolment        TEXT NOT NULL,
    pubkey           BLOB NOT NULL DEFAULT x'',
    key_id           TEXT NOT NULL DEFAULT '',
    model            TEXT NOT NULL DEFAULT '',
    firmware         TEXT NOT NULL DEFAULT '',
    device_name      TEXT NOT NULL DEFAULT '',
    site             TEXT NOT NULL DEFAULT '',
    step             TEXT NOT NULL DEFAULT '',
    release_id       TEXT NOT NULL DEFAULT '',
    progress         INTEGER NOT NULL DEFAULT 0,
    last_result      TEXT NOT NULL DEFAULT '',
    last_code        TEXT NOT NULL DEFAULT '',
    last_release_id  TEXT NOT NULL DEFAULT '',
    queue_depth      INTEGER NOT NULL DEFAULT 0,
    agent_version    TEXT NOT NULL DEFAULT '',
    manifest_serial  BIGINT NOT NULL DEFAULT 0,
    groups           TEXT NOT NULL DEFAULT '',
    interval_seconds BIGINT NOT NULL DEFAULT 0,
    checkin_seq      BIGINT NOT NULL DEFAULT 0,
    report_seq       BIGINT NOT NULL DEFAULT 0,
    first_seen       BIGINT NOT NULL DEFAULT 0,
    last_seen        BIGINT NOT NULL DEFAULT 0,
    stale_after      BIGINT NOT NULL DEFAULT 0,
    stored           TEXT NOT NULL
);
CREATE INDEX devices_state ON devices (stored, stale_after);
CREATE INDEX devices_model ON devices (model);
CREATE INDEX devices_release ON devices (release_id);
CREATE INDEX devices_last_release ON devices (last_release_id);

CREATE TABLE reports (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    received   BIGINT NOT NULL,
    serial     TEXT NOT NULL,
    release_id TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    report_id  TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    result     TEXT NOT NULL,
    body       TEXT NOT NULL
);
CREATE INDEX reports_release ON reports (release_id, id);
CREATE INDEX reports_serial ON reports (serial, id);

CREATE TABLE events (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     BIGINT NOT NULL,
    serial TEXT NOT NULL,
    kind   TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX events_serial ON events (serial, id);

CREATE TABLE releases (
    id          TEXT PRIMARY KEY,
    rollout     TEXT NOT NULL DEFAULT '',
    paused      INTEGER NOT NULL DEFAULT 0,
    paused_at   BIGINT NOT NULL DEFAULT 0,
    paused_by   TEXT NOT NULL DEFAULT '',
    pause_cause TEXT NOT NULL DEFAULT ''
);

CREATE TABLE pauses (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         BIGINT NOT NULL,
    release_id TEXT NOT NULL,
    paused     INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    cause      TEXT NOT NULL
);
CREATE INDEX pauses_release ON pauses (release_id, id);

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);

-- +goose Down
DROP TABLE counters;
DROP TABLE pauses;
DROP TABLE releases;
DROP TABLE events;
DROP TABLE reports;
DROP TABLE devices;
