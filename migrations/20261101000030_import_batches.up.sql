-- One row per SQLite import (`mingus-admin import-sqlite`, import/ crate). Written in the same transaction
-- as the imported rows, so a batch row exists exactly when its rows are visible. Every id a batch creates
-- starts with the batch's 48-bit `id_tag` (UUIDv8, see import/src/ids.rs): rollback and verification find
-- the batch's rows by primary-key range, without a per-row mapping table.
CREATE TABLE import_batches (
    id UUID PRIMARY KEY,
    source_sha256 TEXT NOT NULL,
    source_path TEXT NOT NULL,
    -- The source's alembic revision.
    source_revision TEXT NOT NULL,
    id_tag BIGINT NOT NULL UNIQUE CHECK (id_tag >= 0 AND id_tag < 281474976710656),
    status TEXT NOT NULL CHECK (status IN ('completed', 'rolled_back')),
    -- Per table: rows read from SQLite, rejected, imported.
    counts JSONB NOT NULL,
    -- What --verify compares the live rows with: per table count and checksum, money per user, users.
    expected JSONB NOT NULL,
    rejected_rows INTEGER NOT NULL,
    repaired_values INTEGER NOT NULL,
    -- The batch of the same file this one replaced (--force).
    replaces UUID REFERENCES import_batches(id),
    imported_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    rolled_back_at TIMESTAMPTZ
);
-- A file is imported once: a second live batch of the same bytes cannot exist.
CREATE UNIQUE INDEX import_batches_one_live_per_file ON import_batches (source_sha256) WHERE status = 'completed';
