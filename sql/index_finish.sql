-- After index_update.sql: merge the GIN pending list the updates filled into the index tree
-- in one sorted batch, and count the PST's searchable documents.
SELECT count(*) AS documents, gin_clean_pending_list('email_messages_search_idx'::regclass) AS merged
  FROM email_messages
 WHERE project_id = %(project_id)s AND pst_file_id = %(pst_file_id)s AND search_vector IS NOT NULL;
