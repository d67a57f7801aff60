-- Exchange addresses (issue 17): an EX sender's or recipient's X500 DN is kept here while
-- sender_email and "to"/cc/bcc hold the SMTP address the PST pairs it with elsewhere
-- (extraction/exchange.py). recipient_x500: the DN of every EX recipient, to then cc then bcc.
ALTER TABLE email_messages ADD COLUMN IF NOT EXISTS sender_x500 text;
ALTER TABLE email_messages ADD COLUMN IF NOT EXISTS recipient_x500 text[];
