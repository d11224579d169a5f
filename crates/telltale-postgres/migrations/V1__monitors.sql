-- telltale's URL monitors and their check results (issue #17, docs/monitors.md).
-- Applied by refinery at start (`refinery_schema_history` records it); safe to run twice.

-- One row per monitor: a URL and a frequency in minutes. `monitor_id` is telltale's id
-- (16 hex digits, stable for a URL and frequency); a removed monitor keeps its row, with
-- `removed_at` set, so its results keep their target.
CREATE TABLE urltargets (
    urltargets_pk     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    monitor_id        varchar(16)   NOT NULL UNIQUE,
    urltarget         varchar(1024) NOT NULL,
    monitor_frequency smallint      NOT NULL CHECK (monitor_frequency IN (1, 2, 5, 10, 20, 30)),
    created_at        timestamptz   NOT NULL DEFAULT now(),
    removed_at        timestamptz,
    UNIQUE (urltarget, monitor_frequency)
);

-- One row per check. `duration` and the phase columns are milliseconds (null: the phase
-- was not reached); `error` is null when an answer came, else its class (`dns`,
-- `connect_refused`, `timeout`, `tls`, ...). A check is identified by its monitor and its
-- start time: a retry or a replay of the same result inserts nothing.
CREATE TABLE monitor_results (
    monitor_results_pk bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    urltarget_fk       bigint           NOT NULL REFERENCES urltargets (urltargets_pk),
    start_time         timestamptz      NOT NULL,
    http_status        smallint,
    duration           double precision NOT NULL,
    dns_ms             double precision,
    connect_ms         double precision,
    tls_ms             double precision,
    ttfb_ms            double precision,
    transfer_ms        double precision,
    redirects          integer          NOT NULL DEFAULT 0,
    body_bytes         bigint,
    cert_expiry_days   double precision,
    final_url          varchar(1024),
    error              varchar(32),
    error_message      text,
    up                 boolean          NOT NULL,
    CONSTRAINT monitor_results_once UNIQUE (urltarget_fk, start_time)
);

CREATE INDEX monitor_results_start_time ON monitor_results (start_time);

-- One view per frequency: each result with its URL.
CREATE VIEW view_1m AS
    SELECT t.urltarget, t.monitor_id, t.monitor_frequency, r.*
    FROM monitor_results r JOIN urltargets t ON t.urltargets_pk = r.urltarget_fk
    WHERE t.monitor_frequency = 1;
CREATE VIEW view_2m AS
    SELECT t.urltarget, t.monitor_id, t.monitor_frequency, r.*
    FROM monitor_results r JOIN urltargets t ON t.urltargets_pk = r.urltarget_fk
    WHERE t.monitor_frequency = 2;
CREATE VIEW view_5m AS
    SELECT t.urltarget, t.monitor_id, t.monitor_frequency, r.*
    FROM monitor_results r JOIN urltargets t ON t.urltargets_pk = r.urltarget_fk
    WHERE t.monitor_frequency = 5;
CREATE VIEW view_10m AS
    SELECT t.urltarget, t.monitor_id, t.monitor_frequency, r.*
    FROM monitor_results r JOIN urltargets t ON t.urltargets_pk = r.urltarget_fk
    WHERE t.monitor_frequency = 10;
CREATE VIEW view_20m AS
    SELECT t.urltarget, t.monitor_id, t.monitor_frequency, r.*
    FROM monitor_results r JOIN urltargets t ON t.urltargets_pk = r.urltarget_fk
    WHERE t.monitor_frequency = 20;
CREATE VIEW view_30m AS
    SELECT t.urltarget, t.monitor_id, t.monitor_frequency, r.*
    FROM monitor_results r JOIN urltargets t ON t.urltargets_pk = r.urltarget_fk
    WHERE t.monitor_frequency = 30;
