-- One part of a pipelined load (loader._pipeline_emails): created in the transaction that
-- COPYs into it (so COPY FREEZE applies), with the staging emails table's columns.
CREATE UNLOGGED TABLE {part} (LIKE {emails});
