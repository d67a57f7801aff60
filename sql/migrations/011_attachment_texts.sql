-- 011: the text of attachments, searchable (issue 21).
--
-- attachment_texts: one row per distinct attachment content (sha256) per project, written by
-- the index stage's attachment text step (pstfast/enrich/attachments.py) once: a later PST of
-- the project with the same attachment reuses the row. status is ok | empty | encrypted |
-- unsupported | too_large | failed (reason says why); version is the extractor's
-- (pstfast/enrich/textract.py VERSION): a row of an older version is extracted again.
CREATE TABLE IF NOT EXISTS attachment_texts (
    project_id   text NOT NULL,
    sha256       text NOT NULL,
    status       text NOT NULL,
    reason       text,
    extractor    text NOT NULL,
    version      text NOT NULL,
    kind         text,
    bytes        bigint,
    chars        integer NOT NULL DEFAULT 0,
    seconds      real,
    text         text,
    extracted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, sha256)
);

-- attachment_search: the search entry of each attachment whose content has text (as
-- email_search is for the email): its file name (weight A) and text (D). Keyed by the
-- attachment, with the sha256 it was built from, so a reload that changes the attachment's
-- bytes is seen (the index stage deletes entries whose sha256 no longer matches) and a
-- search joins email_attachments on both: an entry of a removed PST never matches.
CREATE TABLE IF NOT EXISTS attachment_search (
    attachment_id uuid PRIMARY KEY,
    email_id      uuid NOT NULL,
    project_id    text NOT NULL,
    sha256        text NOT NULL,
    search_vector tsvector NOT NULL,
    cut           jsonb
);
CREATE INDEX IF NOT EXISTS attachment_search_vector_idx ON attachment_search USING gin (search_vector);
CREATE INDEX IF NOT EXISTS attachment_search_email_idx ON attachment_search (email_id);
CREATE INDEX IF NOT EXISTS email_attachments_sha256_idx ON email_attachments (sha256);

-- The search entry of one attachment: the file name and at most 300,000 characters of text,
-- together under a tsvector's 1 MB (pstfast_tsvector_capped, 008), and what was cut.
CREATE OR REPLACE FUNCTION pstfast_attachment_entry(filename text, body text, OUT search_vector tsvector,
                                                    OUT cut jsonb)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    f record;
    b record;
BEGIN
    f := pstfast_tsvector_capped(filename, 10000, 65536);
    b := pstfast_tsvector_capped(body, 300000, 1000000 - pg_column_size(f.vector));
    search_vector := setweight(f.vector, 'A') || setweight(b.vector, 'D');
    cut := CASE WHEN b.kept < coalesce(length(body), 0)
                THEN jsonb_build_object('text', jsonb_build_array(b.kept, length(body))) END;
END
$$;
