-- The secrets a template splices, kept beside it and indexed, so that a change to a
-- secret finds the templates that use it through the index instead of scanning every
-- template (at 100,000 workloads, tens of thousands of grant items carry one). A superset
-- is fine: envoi reads each template found and keeps only those that really splice the
-- secret (`$${` is a literal `${`, as here: a reference right after a `$` is none).

CREATE FUNCTION envoi_template_references(template text) RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN template IS NULL THEN NULL ELSE ARRAY(
        SELECT m[1] FROM regexp_matches(template, '(?<!\$)\$\{secret\.([A-Za-z0-9_.-]+)\}', 'g') AS m
    ) END
$$;

ALTER TABLE envoi_secrets ADD COLUMN template_references text[]
    GENERATED ALWAYS AS (envoi_template_references(template)) STORED;
ALTER TABLE envoi_grant_items ADD COLUMN template_references text[]
    GENERATED ALWAYS AS (envoi_template_references(template)) STORED;

CREATE INDEX envoi_secrets_template_references ON envoi_secrets USING gin (template_references);
CREATE INDEX envoi_grant_items_template_references ON envoi_grant_items USING gin (template_references);

-- A grant's definition in the history stays what it was: its items without the derived
-- column.
CREATE OR REPLACE FUNCTION envoi_grant_definition(g envoi_grants) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'project', g.project, 'type', g.type, 'object_id', g.object_id,
        'items', coalesce((
            SELECT jsonb_agg(jsonb_strip_nulls(to_jsonb(i) - 'grant_name' - 'template_references') ORDER BY i.kind, i.target)
            FROM envoi_grant_items i WHERE i.grant_name = g.name
        ), '[]'::jsonb))
$$;
