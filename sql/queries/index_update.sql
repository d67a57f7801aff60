-- Compute the search entry (pstfast_search_entry, 008_search_limits.sql: the tsvector, each
-- field cut to what a tsvector holds, and what was cut) of each of one PST's emails that
-- has none: all of them after a first load. The index stage runs this for each part
-- (%(part)s of %(parts)s, split by a byte of the email_id) on its own connection at once:
-- computing the vectors is the CPU-heavy part. Returns the rows added.
WITH added AS (
    INSERT INTO email_search (email_id, project_id, search_vector, cut)
    SELECT m.email_id, m.project_id, e.search_vector, e.cut
      FROM email_messages m
     CROSS JOIN LATERAL pstfast_search_entry(m.subject, m.sender_name, m.sender_email, m."to", m.cc,
                                             -- 010: categories, attendees, contact addresses (weight C)
                                             m.bcc || pstfast_item_search_terms(m.categories, m.item_properties),
                                             m.body_text) e
     WHERE m.project_id = %(project_id)s AND m.pst_file_id = %(pst_file_id)s
       AND get_byte(uuid_send(m.email_id), 15) %% %(parts)s = %(part)s
       AND NOT EXISTS (SELECT 1 FROM email_search s WHERE s.email_id = m.email_id)
    RETURNING 1)
SELECT count(*) FROM added;
