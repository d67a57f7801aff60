-- 001: core tables. Idempotent: safe to apply to a database that already has them.

CREATE TABLE IF NOT EXISTS pst_files (
    pst_file_id      text PRIMARY KEY,
    project_id       text NOT NULL,
    source           text,
    status           text NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'extracted', 'loaded', 'threaded', 'deduped', 'indexed', 'failed')),
    error            text,
    error_kind       text,
    failed_stage     text,
    email_count      bigint,
    attachment_count bigint,
    manifest_sha256  text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    extracted_at     timestamptz,
    loaded_at        timestamptz,
    threaded_at      timestamptz,
    deduped_at       timestamptz,
    indexed_at       timestamptz,
    failed_at        timestamptz
);
CREATE INDEX IF NOT EXISTS pst_files_project_idx ON pst_files (project_id);

-- No foreign keys on the two big tables: per-row FK triggers would slow every load, and
-- the loader checks the same invariants set-wise before it upserts (load_validate.sql).
-- Columns up to extractor_version mirror pstfast.records.EMAIL_COLUMNS (a test keeps them
-- equal); the rest are written by the thread / dedupe / index stages.
CREATE TABLE IF NOT EXISTS email_messages (
    email_id               uuid PRIMARY KEY,
    parent_email_id        uuid,
    project_id             text NOT NULL,
    pst_file_id            text NOT NULL,
    folder_path            text,
    message_class          text,
    internet_message_id    text,
    in_reply_to            text,
    "references"           text[],
    conversation_index     text,
    conversation_topic     text,
    subject                text,
    normalized_subject     text,
    sender_name            text,
    sender_email           text,
    "to"                   text[],
    cc                     text[],
    bcc                    text[],
    sent_at                timestamptz,
    received_at            timestamptz,
    body_text              text,
    body_html              text,
    transport_headers      text,
    attachment_count       integer,
    size_bytes             bigint,
    importance             smallint,
    content_hash           text,
    extractor_version      text,
    thread_id              uuid,
    thread_parent_id       uuid,
    thread_position        integer,
    duplicate_of           uuid,
    duplicate_pst_file_ids text[],
    search_vector          tsvector
);
CREATE INDEX IF NOT EXISTS email_messages_project_pst_idx ON email_messages (project_id, pst_file_id);

CREATE TABLE IF NOT EXISTS email_attachments (
    attachment_id uuid PRIMARY KEY,
    email_id      uuid NOT NULL,
    ordinal       integer,
    filename      text,
    mime_type     text,
    size          bigint,
    content_id    text,
    is_inline     boolean,
    method        text,
    sha256        text,
    storage_key   text
);
CREATE INDEX IF NOT EXISTS email_attachments_email_idx ON email_attachments (email_id);

CREATE TABLE IF NOT EXISTS stage_runs (
    stage_run_id bigserial PRIMARY KEY,
    pst_file_id  text NOT NULL,
    project_id   text,
    stage        text NOT NULL,
    attempt      integer NOT NULL,
    status       text NOT NULL,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz,
    seconds      double precision,
    counts       jsonb NOT NULL DEFAULT '{}',
    timings      jsonb NOT NULL DEFAULT '{}',
    metrics      jsonb NOT NULL DEFAULT '{}',
    error        text,
    error_kind   text
);
CREATE INDEX IF NOT EXISTS stage_runs_pst_idx ON stage_runs (pst_file_id, stage);

-- Per-project cut-over between the legacy pipeline and V2 (read by `pstfast submit`).
CREATE TABLE IF NOT EXISTS pipeline_routes (
    project_id text PRIMARY KEY,
    pipeline   text NOT NULL CHECK (pipeline IN ('v2', 'legacy')),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Staging tables live in their own schema, one pair per PST (see staging_create.sql).
CREATE SCHEMA IF NOT EXISTS pstfast_staging;
