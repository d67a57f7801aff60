-- Semantic search: the emails nearest to %(vector)s (cosine) in one mode, by their own vector
-- or the nearest chunk of one of their attachments; one row per email, best first. The two
-- HNSW scans take %(k)s candidates each (iterative scans, set by the caller, keep filling
-- them when the project filter drops some).
WITH q AS (SELECT %(vector)s::vector AS v),
near_emails AS (
    SELECT e.email_id, NULL::uuid AS attachment_id, NULL::text AS filename, e.embedding <=> q.v AS distance
      FROM email_vectors e, q
     WHERE e.model = %(model)s AND e.project_id = %(project_id)s
     ORDER BY e.embedding <=> q.v
     LIMIT %(k)s),
near_chunks AS (
    SELECT c.sha256, min(c.distance) AS distance
      FROM (SELECT v.sha256, v.embedding <=> q.v AS distance
              FROM attachment_vectors v, q
             WHERE v.model = %(model)s AND v.project_id = %(project_id)s
             ORDER BY v.embedding <=> q.v
             LIMIT %(k)s) c
     GROUP BY c.sha256),
near_attachments AS (
    SELECT a.email_id, a.attachment_id, a.filename, n.distance
      FROM near_chunks n
      JOIN email_attachments a ON a.sha256 = n.sha256
      JOIN email_messages m ON m.email_id = a.email_id AND m.project_id = %(project_id)s),
best AS (
    SELECT DISTINCT ON (email_id) email_id, attachment_id, filename, distance
      FROM (SELECT * FROM near_emails UNION ALL SELECT * FROM near_attachments) h
     ORDER BY email_id, distance, attachment_id NULLS FIRST)
SELECT m.email_id, m.pst_file_id, m.subject, m.sender_email, m.sent_at, m.thread_id, m.duplicate_of,
       1 - b.distance AS rank, b.attachment_id, b.filename
  FROM best b
  JOIN email_messages m USING (email_id)
 ORDER BY b.distance, m.email_id
 LIMIT %(limit)s;
