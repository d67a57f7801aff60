-- 004: full-text search: a GIN index over the stored tsvector the index stage fills in
-- (index_update.sql), plus the indexes the thread / dedupe results are read through.
CREATE INDEX IF NOT EXISTS email_messages_search_idx ON email_messages USING gin (search_vector);
CREATE INDEX IF NOT EXISTS email_messages_thread_idx ON email_messages (project_id, thread_id);
