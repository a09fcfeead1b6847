-- A write checks only what it can affect (SPEC §2, Stores): the grants it changes, those
-- that use a secret it changes, and the grants that could conflict with them. Two grants
-- can conflict only when they have equal specificity, so the same kind of pattern in each
-- field (an exact name, a glob, or `*`) and, where exact, the same name: `bucket` holds
-- that class, computed as envoi's selector parser classifies a field, so that a write
-- finds a grant's possible rivals through an index instead of reading every grant.
-- The column is generated: existing rows get theirs when this runs.

CREATE FUNCTION envoi_field_class(field text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN field ~ '^\*+$' THEN '*'
        WHEN strpos(field, '*') = 0 AND strpos(field, '?') = 0 THEN '=' || field
        ELSE '~'
    END
$$;

ALTER TABLE envoi_grants ADD COLUMN bucket text GENERATED ALWAYS AS (
    envoi_field_class(project) || chr(31) || envoi_field_class(type) || chr(31) || envoi_field_class(object_id)
) STORED;

CREATE INDEX envoi_grants_bucket ON envoi_grants (bucket);

-- What names a secret through a template: few rows, scanned by `strpos`.
CREATE INDEX envoi_secrets_templates ON envoi_secrets (name) WHERE template IS NOT NULL;
CREATE INDEX envoi_grant_items_templates ON envoi_grant_items (grant_name) WHERE template IS NOT NULL;

