-- ... and attached, in the same transaction, as an inheritance child of the staging emails
-- table: validation reads all parts through {emails}; DROP ... CASCADE removes them.
ALTER TABLE {part} INHERIT {emails};
