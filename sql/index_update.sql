-- Fill the stored tsvector of one PST's emails ('simple' config: no stemming, so any
-- language's words and exact phrases are found). Weights: A subject, B sender,
-- C recipients, D body. A tsvector holds at most 1 MB, so the body is cut at 100,000
-- characters: even 50,000 distinct one-character 4-byte words (~12 bytes each with entry
-- and position) stay near 600 KB.
UPDATE email_messages
   SET search_vector =
         setweight(to_tsvector('simple', coalesce(subject, '')), 'A')
      || setweight(to_tsvector('simple', concat_ws(' ', sender_name, sender_email)), 'B')
      || setweight(to_tsvector('simple', concat_ws(' ', array_to_string("to", ' '),
                                                     array_to_string(cc, ' '),
                                                     array_to_string(bcc, ' '))), 'C')
      || setweight(to_tsvector('simple', left(coalesce(body_text, ''), 100000)), 'D')
 WHERE project_id = %(project_id)s AND pst_file_id = %(pst_file_id)s;
