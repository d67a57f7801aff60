-- Semantic search tables (pgvector), made by the index stage on first use with embeddings,
-- not by a migration: a server without the vector extension keeps every other feature,
-- text search included (pstfast/enrich/vectors.py checks pg_available_extensions first and
-- says what to install). Both embedding modes are 384-dimensional (pstfast/enrich/embed.py);
-- one HNSW cosine index per mode, so a query of one mode never walks the other's graph.
--
-- email_vectors: one per email and mode (subject + body), with the content_hash it was
-- computed from: a reload that changes the email is seen and its vector redone.
-- attachment_vectors: the chunks of an attachment content's text, once per sha256 per
-- project and mode, as attachment_texts is.
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE IF NOT EXISTS email_vectors (
    email_id     uuid NOT NULL,
    model        text NOT NULL,
    project_id   text NOT NULL,
    content_hash text,
    embedding    vector(384) NOT NULL,
    PRIMARY KEY (email_id, model)
);
CREATE TABLE IF NOT EXISTS attachment_vectors (
    project_id text NOT NULL,
    sha256     text NOT NULL,
    model      text NOT NULL,
    chunk      integer NOT NULL,
    embedding  vector(384) NOT NULL,
    PRIMARY KEY (project_id, sha256, model, chunk)
);
CREATE INDEX IF NOT EXISTS email_vectors_fast_idx ON email_vectors
    USING hnsw (embedding vector_cosine_ops) WHERE model = 'fast';
CREATE INDEX IF NOT EXISTS email_vectors_quality_idx ON email_vectors
    USING hnsw (embedding vector_cosine_ops) WHERE model = 'quality';
CREATE INDEX IF NOT EXISTS attachment_vectors_fast_idx ON attachment_vectors
    USING hnsw (embedding vector_cosine_ops) WHERE model = 'fast';
CREATE INDEX IF NOT EXISTS attachment_vectors_quality_idx ON attachment_vectors
    USING hnsw (embedding vector_cosine_ops) WHERE model = 'quality';
