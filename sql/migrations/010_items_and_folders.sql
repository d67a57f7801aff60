-- 010: beyond mail (issue 20): review metadata, folders, and what appointments, contacts,
-- distribution lists and tasks carry (item_properties, keyed by its "kind").
--
-- flags is PR_MESSAGE_FLAGS; is_read / is_draft its mfRead / mfUnsent bits (a draft has no
-- sent_at). sensitivity: 0 normal, 1 personal, 2 private, 3 confidential. categories: the
-- PS_PUBLIC_STRINGS "Keywords" named property. folder_id: the row's folder in
-- email_folders (ids from node ids: unique in the PST whatever the names).
ALTER TABLE email_messages ADD COLUMN IF NOT EXISTS flags integer;
ALTER TABLE email_messages ADD COLUMN IF NOT EXISTS is_read boolean;
ALTER TABLE email_messages ADD COLUMN IF NOT EXISTS is_draft boolean;
ALTER TABLE email_messages ADD COLUMN IF NOT EXISTS created_at timestamptz;
ALTER TABLE email_messages ADD COLUMN IF NOT EXISTS modified_at timestamptz;
ALTER TABLE email_messages ADD COLUMN IF NOT EXISTS sensitivity smallint;
ALTER TABLE email_messages ADD COLUMN IF NOT EXISTS categories text[];
ALTER TABLE email_messages ADD COLUMN IF NOT EXISTS sent_representing_name text;
ALTER TABLE email_messages ADD COLUMN IF NOT EXISTS sent_representing_email text;
ALTER TABLE email_messages ADD COLUMN IF NOT EXISTS folder_id uuid;
ALTER TABLE email_messages ADD COLUMN IF NOT EXISTS item_properties jsonb;
ALTER TABLE email_messages DROP CONSTRAINT IF EXISTS email_messages_item_properties_check;
ALTER TABLE email_messages ADD CONSTRAINT email_messages_item_properties_check
    CHECK (item_properties IS NULL OR (jsonb_typeof(item_properties) = 'object' AND item_properties ? 'kind'));
CREATE INDEX IF NOT EXISTS email_messages_folder_idx ON email_messages (folder_id);
CREATE INDEX IF NOT EXISTS email_messages_categories_idx ON email_messages USING gin (categories);

-- one row per folder of a loaded PST (folders.csv.gz); path: the names from the root joined
-- by '/', a '/' or '\' inside a name escaped with '\' (so a folder named "a/b" and a folder
-- "b" inside "a" never share a path)
CREATE TABLE IF NOT EXISTS email_folders (
    folder_id        uuid PRIMARY KEY,
    parent_folder_id uuid,
    project_id       text NOT NULL,
    pst_file_id      text NOT NULL,
    name             text,
    path             text,
    container_class  text,
    item_count       integer,
    unread_count     integer
);
CREATE INDEX IF NOT EXISTS email_folders_project_pst_idx ON email_folders (project_id, pst_file_id);

-- What search adds to an email's recipients field (weight C) from its categories and its
-- item_properties: attendees' and the organizer's names and addresses, a contact's names,
-- company, e-mail addresses and phone numbers, a distribution list's members, the location.
CREATE OR REPLACE FUNCTION pstfast_item_search_terms(categories text[], props jsonb)
RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(categories, '{}'::text[]) || coalesce(array(
        SELECT t FROM (
            SELECT v ->> 'name' AS t FROM jsonb_array_elements(coalesce(props -> 'attendees', '[]')) v
            UNION ALL SELECT v ->> 'email' FROM jsonb_array_elements(coalesce(props -> 'attendees', '[]')) v
            UNION ALL SELECT v ->> 'name' FROM jsonb_array_elements(coalesce(props -> 'members', '[]')) v
            UNION ALL SELECT v ->> 'email' FROM jsonb_array_elements(coalesce(props -> 'members', '[]')) v
            UNION ALL SELECT v ->> 'email' FROM jsonb_array_elements(coalesce(props -> 'email_addresses', '[]')) v
            UNION ALL SELECT v ->> 'display_name'
                        FROM jsonb_array_elements(coalesce(props -> 'email_addresses', '[]')) v
            UNION ALL SELECT v ->> 'text' FROM jsonb_array_elements(coalesce(props -> 'postal_addresses', '[]')) v
            UNION ALL SELECT value FROM jsonb_each_text(
                CASE WHEN jsonb_typeof(props -> 'phone_numbers') = 'object' THEN props -> 'phone_numbers'
                     ELSE '{}'::jsonb END)
            UNION ALL SELECT props -> 'organizer' ->> 'name'
            UNION ALL SELECT props -> 'organizer' ->> 'email'
            UNION ALL SELECT props ->> k FROM unnest(ARRAY['location', 'display_name', 'given_name', 'surname',
                                                          'company', 'job_title', 'owner', 'name']) k
        ) terms WHERE t IS NOT NULL AND t <> ''), '{}'::text[])
$$;
