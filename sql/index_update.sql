-- Fill the search vector (pstfast_search_vector, 005_search_vector.sql) of one PST's rows
-- that have none: all of them after a load (an upsert that changes a row clears it). The
-- index stage runs this for each part (%(part)s of %(parts)s, split by a byte of the
-- email_id) on its own connection at once: computing the vectors is the CPU-heavy part.
-- Returns how many rows it filled.
WITH filled AS (
    UPDATE email_messages
       SET search_vector = pstfast_search_vector(subject, sender_name, sender_email, "to", cc, bcc, body_text)
     WHERE project_id = %(project_id)s AND pst_file_id = %(pst_file_id)s AND search_vector IS NULL
       AND get_byte(uuid_send(email_id), 15) %% %(parts)s = %(part)s
    RETURNING 1)
SELECT count(*) FROM filled;
