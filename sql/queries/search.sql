-- `pstfast search`: web-search syntax ("quoted phrase", -not, or), best matches first.
SELECT m.email_id, m.pst_file_id, m.subject, m.sender_email, m.sent_at, m.thread_id,
       m.duplicate_of, ts_rank(s.search_vector, q) AS rank
  FROM email_search s
  JOIN email_messages m USING (email_id),
       websearch_to_tsquery('simple', %(query)s) AS q
 WHERE s.project_id = %(project_id)s AND s.search_vector @@ q
 ORDER BY rank DESC, m.sent_at NULLS LAST, m.email_id
 LIMIT %(limit)s;
