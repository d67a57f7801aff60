-- Before pstfast_remove_pst (007), when the vector tables exist (vectors_setup.sql): the
-- PST's e-mail vectors. attachment_vectors stay with the project, as attachment_texts do.
DELETE FROM email_vectors v USING email_messages m
 WHERE v.email_id = m.email_id AND m.project_id = %(project_id)s AND m.pst_file_id = %(pst_file_id)s;
