-- One chunk vector of an attachment content (vectors_setup.sql).
INSERT INTO attachment_vectors (project_id, sha256, model, chunk, embedding)
VALUES (%(project_id)s, %(sha256)s, %(model)s, %(chunk)s, %(embedding)s::vector)
ON CONFLICT (project_id, sha256, model, chunk) DO UPDATE SET embedding = EXCLUDED.embedding;
