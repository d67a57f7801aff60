-- `pstfast search` (text mode): web-search syntax ("quoted phrase", -not, or) over the
-- emails' search entries (email_search) and their attachments' (attachment_search, 011);
-- one row per email, best match first. attachment_id / filename name the best-ranked
-- attachment that matched (NULL when only the email's own text did); in_email says whether
-- the email's own text matched too.
WITH q AS (SELECT websearch_to_tsquery('simple', %(query)s) AS q),
hits AS (
    SELECT s.email_id, NULL::uuid AS attachment_id, NULL::text AS filename, ts_rank(s.search_vector, q.q) AS rank
      FROM email_search s, q
     WHERE s.project_id = %(project_id)s AND s.search_vector @@ q.q
    UNION ALL
    SELECT a.email_id, a.attachment_id, a.filename, ts_rank(x.search_vector, q.q)
      FROM attachment_search x
      JOIN email_attachments a ON a.attachment_id = x.attachment_id AND a.sha256 = x.sha256, q
     WHERE x.project_id = %(project_id)s AND x.search_vector @@ q.q),
best AS (
    SELECT email_id, max(rank) AS rank, bool_or(attachment_id IS NULL) AS in_email,
           (array_agg(attachment_id ORDER BY rank DESC, attachment_id) FILTER (WHERE attachment_id IS NOT NULL))[1]
               AS attachment_id,
           (array_agg(filename ORDER BY rank DESC, attachment_id) FILTER (WHERE attachment_id IS NOT NULL))[1]
               AS filename
      FROM hits
     GROUP BY email_id)
SELECT m.email_id, m.pst_file_id, m.subject, m.sender_email, m.sent_at, m.thread_id,
       m.duplicate_of, b.rank, b.attachment_id, b.filename, b.in_email
  FROM best b
  JOIN email_messages m USING (email_id)
 ORDER BY b.rank DESC, m.sent_at NULLS LAST, m.email_id
 LIMIT %(limit)s;
