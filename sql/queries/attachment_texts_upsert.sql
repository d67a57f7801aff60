-- One attachment content's extracted text (attachment_texts, 011), replacing an older one.
INSERT INTO attachment_texts (project_id, sha256, status, reason, extractor, version, kind, bytes, chars, seconds, text)
VALUES (%(project_id)s, %(sha256)s, %(status)s, %(reason)s, %(extractor)s, %(version)s, %(kind)s, %(bytes)s,
        %(chars)s, %(seconds)s, %(text)s)
ON CONFLICT (project_id, sha256) DO UPDATE
   SET status = EXCLUDED.status, reason = EXCLUDED.reason, extractor = EXCLUDED.extractor,
       version = EXCLUDED.version, kind = EXCLUDED.kind, bytes = EXCLUDED.bytes, chars = EXCLUDED.chars,
       seconds = EXCLUDED.seconds, text = EXCLUDED.text, extracted_at = now();
