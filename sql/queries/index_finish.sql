-- After index_update.sql: merge the GIN pending list it filled into the index tree in one
-- sorted batch, and count the PST's searchable documents.
SELECT count(*) AS documents, gin_clean_pending_list('email_search_vector_idx'::regclass) AS merged
  FROM email_messages m JOIN email_search s USING (email_id)
 WHERE m.project_id = %(project_id)s AND m.pst_file_id = %(pst_file_id)s;
