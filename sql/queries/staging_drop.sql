-- A PST's staging tables; CASCADE also drops a pipelined load's parts (inheritance children).
DROP TABLE IF EXISTS {emails} CASCADE;
DROP TABLE IF EXISTS {attachments};
DROP TABLE IF EXISTS {folders};
