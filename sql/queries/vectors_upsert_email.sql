-- One email's vector of one mode (vectors_setup.sql).
INSERT INTO email_vectors (email_id, model, project_id, content_hash, embedding)
VALUES (%(email_id)s, %(model)s, %(project_id)s, %(content_hash)s, %(embedding)s::vector)
ON CONFLICT (email_id, model) DO UPDATE
   SET content_hash = EXCLUDED.content_hash, embedding = EXCLUDED.embedding, project_id = EXCLUDED.project_id;
