-- The feedback log: reports acknowledged since a replica last wrote its figures whole, one row
-- per group commit (`entry`, as the feedback aggregator encodes it), in the order `seq` the
-- replica wrote them. A replica writes only its own rows and drops them in the transaction
-- that writes its figures; readers fold every other replica's rows into its figures.
CREATE TABLE feedback_log (
    replica text NOT NULL,
    seq     bigint NOT NULL,
    entry   bytea NOT NULL,
    PRIMARY KEY (replica, seq)
);
