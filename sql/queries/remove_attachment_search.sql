-- Before pstfast_remove_pst (007): the search entries of the PST's attachments (011). Their
-- attachment_texts rows stay with the project: content-addressed, maybe shared, like the
-- attachment objects.
DELETE FROM attachment_search s USING email_messages m
 WHERE s.email_id = m.email_id AND m.project_id = %(project_id)s AND m.pst_file_id = %(pst_file_id)s;
