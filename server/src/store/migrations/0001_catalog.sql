-- Halftone's PostgreSQL schema, version 1. Keys are columns; each value is the JSON of a record
-- of server/src/store/records.rs, the same records the embedded store keeps.

CREATE TABLE halftone_meta (
    key   text PRIMARY KEY,
    value jsonb NOT NULL
);

CREATE TABLE apps (
    app    text PRIMARY KEY,
    record jsonb NOT NULL
);

CREATE TABLE releases (
    app     text NOT NULL REFERENCES apps (app),
    version text NOT NULL,
    record  jsonb NOT NULL,
    PRIMARY KEY (app, version)
);

CREATE TABLE rollouts (
    app     text NOT NULL,
    version text NOT NULL,
    channel text NOT NULL,
    record  jsonb NOT NULL,
    PRIMARY KEY (app, version, channel),
    FOREIGN KEY (app, version) REFERENCES releases (app, version)
);

CREATE TABLE tokens (
    id     text PRIMARY KEY,
    record jsonb NOT NULL
);

-- `app` is NULL for server-wide entries (tokens).
CREATE TABLE audit (
    seq    bigserial PRIMARY KEY,
    app    text,
    record jsonb NOT NULL
);
CREATE INDEX audit_by_app ON audit (app, seq);

-- Distinct-device sketches, as the feedback aggregator encodes them, one row per replica
-- process (`replica`): each writes only its own rows, and fleet-wide figures are the merge of
-- all rows (sketches merge as unions, counters add up), so replicas never overwrite each other.
CREATE TABLE feedback (
    app     text NOT NULL,
    version text NOT NULL,
    channel text NOT NULL,
    replica text NOT NULL,
    sketch  bytea NOT NULL,
    PRIMARY KEY (app, version, channel, replica)
);

CREATE TABLE adoption (
    app     text NOT NULL,
    channel text NOT NULL,
    version text NOT NULL,
    window_start bigint NOT NULL,
    replica text NOT NULL,
    sketch  bytea NOT NULL,
    PRIMARY KEY (app, channel, version, window_start, replica)
);

-- The revision of each thing replicas cache: `app:<id>` for an app's settings, releases and
-- rollouts, `tokens` for the token table. Every change bumps its scope's revision in the same
-- transaction, guarded by the revision it was checked against, so two replicas can never
-- interleave changes to one app; the new revision is announced with NOTIFY halftone.
CREATE TABLE halftone_revisions (
    scope    text PRIMARY KEY,
    revision bigint NOT NULL
);
