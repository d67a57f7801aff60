-- The emails of one PST without a vector of %(model)s for their current content: the
-- subject and the start of the body (what one vector covers).
SELECT m.email_id, m.content_hash, concat_ws(E'\n', m.subject, left(m.body_text, %(chars)s)) AS text
  FROM email_messages m
 WHERE m.project_id = %(project_id)s AND m.pst_file_id = %(pst_file_id)s
   AND NOT EXISTS (SELECT 1 FROM email_vectors v
                    WHERE v.email_id = m.email_id AND v.model = %(model)s
                      AND v.content_hash IS NOT DISTINCT FROM m.content_hash)
 ORDER BY m.email_id;
