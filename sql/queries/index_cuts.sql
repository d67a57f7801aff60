-- The search entries of one PST that were cut to fit a tsvector (email_search.cut, see
-- 008_search_limits.sql), for the index stage's warnings: how many, and the first
-- %(limit)s by email_id with what was cut.
SELECT count(*) OVER () AS entries, m.email_id, m.subject, s.cut
  FROM email_messages m JOIN email_search s USING (email_id)
 WHERE m.project_id = %(project_id)s AND m.pst_file_id = %(pst_file_id)s AND s.cut IS NOT NULL
 ORDER BY m.email_id
 LIMIT %(limit)s;
