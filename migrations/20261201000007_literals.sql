-- Literals (`value = "eu"`, for what is not secret) are stored sealed like every value,
-- and marked, so that `db export` can write them back as literals: an exported policy
-- then reads in review as the TOML it was imported from. A value written by `secret
-- put` or restored by `db rollback` is not marked (it may be a secret).
ALTER TABLE envoi_secrets ADD COLUMN literal boolean NOT NULL DEFAULT false
    CHECK (NOT literal OR sealed IS NOT NULL);
ALTER TABLE envoi_grant_items ADD COLUMN literal boolean NOT NULL DEFAULT false
    CHECK (NOT literal OR sealed IS NOT NULL);

-- The history's grant definitions stay as they were (the mark is not kept there): a
-- rollback then compares a grant recorded before this migration with one recorded after
-- as equal when only the mark differs.
CREATE OR REPLACE FUNCTION envoi_grant_definition(g envoi_grants) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'project', g.project, 'type', g.type, 'object_id', g.object_id,
        'items', coalesce((
            SELECT jsonb_agg(jsonb_strip_nulls(to_jsonb(i) - 'grant_name' - 'template_references' - 'literal')
                ORDER BY i.kind, i.target)
            FROM envoi_grant_items i WHERE i.grant_name = g.name
        ), '[]'::jsonb))
$$;

-- The same shape where the history records a change at commit (the derived columns of
-- migration 6 and this one left out there too).
CREATE OR REPLACE FUNCTION envoi_change_complete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Set-based (one join, one aggregate), so that a 100,000-grant import stays quick.
    WITH changed AS (
        SELECT name FROM envoi_change_items
        WHERE generation = NEW.generation AND object = 'grant' AND definition IS NULL
    ), items AS (
        SELECT i.grant_name,
               jsonb_agg(jsonb_strip_nulls(to_jsonb(i) - 'grant_name' - 'template_references' - 'literal')
                   ORDER BY i.kind, i.target) AS items
        FROM envoi_grant_items i JOIN changed c ON c.name = i.grant_name
        GROUP BY i.grant_name
    )
    UPDATE envoi_change_items c SET definition = jsonb_build_object(
            'project', g.project, 'type', g.type, 'object_id', g.object_id,
            'items', coalesce(items.items, '[]'::jsonb))
        FROM envoi_grants g LEFT JOIN items ON items.grant_name = g.name
        WHERE c.generation = NEW.generation AND c.object = 'grant' AND c.definition IS NULL AND g.name = c.name;
    UPDATE envoi_change_items c SET action = 'removed'
        WHERE c.generation = NEW.generation AND c.object = 'grant' AND c.definition IS NULL AND c.action <> 'removed';
    RETURN NULL;
END
$$;
