-- The server's own secrets (answer-signing keys, the feedback-token key), by name. Raw bytes:
-- they are read only by the server, at start-up and when rotated.

CREATE TABLE halftone_secrets (
    name  text PRIMARY KEY,
    value bytea NOT NULL
);
