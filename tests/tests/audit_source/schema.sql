-- The cluster's audit store as the exporter creates it (the contract between the exporter
-- and `paddock audit --source`). Created here by hand until the test uses the exporter's own
-- schema creation. Owned by the role paddock, which both writes (the loader) and reads.
CREATE SCHEMA paddock AUTHORIZATION paddock;
SET ROLE paddock;
CREATE TABLE paddock.runs (
    node text NOT NULL, store_id text NOT NULL, run bigint NOT NULL, instance bigint NOT NULL,
    investigation text NOT NULL, phase text NOT NULL, source text, cgroup text,
    namespace text, pod text, job text, started timestamptz NOT NULL, ended timestamptz,
    outcome text, reason text, events bigint NOT NULL,
    PRIMARY KEY (node, store_id, run)
);
CREATE TABLE paddock.events (
    node text NOT NULL, store_id text NOT NULL, run bigint NOT NULL, seq bigint NOT NULL,
    time timestamptz NOT NULL, investigation text NOT NULL, phase text NOT NULL,
    kind text NOT NULL, pid bigint NOT NULL, ppid bigint NOT NULL,
    namespace text, pod text, job text, body jsonb NOT NULL,
    PRIMARY KEY (node, store_id, seq, time)
) PARTITION BY RANGE (time);
CREATE INDEX ON paddock.events (investigation, time);
CREATE TABLE paddock.export_cursor (
    node text NOT NULL, store_id text NOT NULL, acked_seq bigint NOT NULL,
    updated timestamptz NOT NULL, PRIMARY KEY (node, store_id)
);
-- Daily partitions around today (UTC), and a default one for anything else.
DO $$
DECLARE day date;
BEGIN
    FOR i IN -1..1 LOOP
        day := (now() AT TIME ZONE 'UTC')::date + i;
        EXECUTE format(
            'CREATE TABLE paddock.events_%s PARTITION OF paddock.events FOR VALUES FROM (%L) TO (%L)',
            to_char(day, 'YYYYMMDD'), day::timestamp AT TIME ZONE 'UTC',
            (day + 1)::timestamp AT TIME ZONE 'UTC');
    END LOOP;
END $$;
CREATE TABLE paddock.events_default PARTITION OF paddock.events DEFAULT;
