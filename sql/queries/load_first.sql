-- Does this PST have rows in the targets yet? No: its load is a plain INSERT (load_insert.sql);
-- yes: a rerun, merged by load_upsert.sql. Runs inside the insert transaction.
SELECT EXISTS (SELECT 1 FROM email_messages
                WHERE project_id = %(project_id)s AND pst_file_id = %(pst_file_id)s) AS loaded_before;
