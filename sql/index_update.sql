-- Make one PST's emails searchable: the load already stored each row's search vector
-- (pstfast_search_vector, 005_search_vector.sql); fill any row still without one (rows
-- loaded before migration 005), then merge the GIN pending list the load left into the
-- index tree. Returns how many rows it filled and how many the PST has.
WITH filled AS (
    UPDATE email_messages
       SET search_vector = pstfast_search_vector(subject, sender_name, sender_email, "to", cc, bcc, body_text)
     WHERE project_id = %(project_id)s AND pst_file_id = %(pst_file_id)s AND search_vector IS NULL
    RETURNING 1)
SELECT (SELECT count(*) FROM filled) AS filled, count(*) AS documents,
       gin_clean_pending_list('email_messages_search_idx'::regclass) AS merged
  FROM email_messages
 WHERE project_id = %(project_id)s AND pst_file_id = %(pst_file_id)s;
