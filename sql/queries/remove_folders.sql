-- pstfast remove: the PST's folders (010) go with its rows (pstfast_remove_pst, 007).
DELETE FROM email_folders WHERE project_id = %(project_id)s AND pst_file_id = %(pst_file_id)s;
