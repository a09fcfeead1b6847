-- An append-only history of the policy (SPEC §2, Stores): one `envoi_changes` row per
-- writing transaction (its generation, time, actor and kind), and one `envoi_change_items`
-- row per secret or grant it changed, holding the secret or grant as it was after the
-- change (a secret's value sealed as it was stored; a grant's definition as JSON). Rows are
-- written by triggers, set-based over each statement's transition tables, so that every
-- write path records its changes and a bulk `db import` records them in a few statements.
-- A database made by the earlier migrations keeps its rows; what it holds is recorded as
-- a `baseline` change at its current generation, so that the history starts complete.

CREATE TABLE envoi_changes (
    generation  bigint PRIMARY KEY,
    changed_at  timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL CHECK (actor <> ''),
    kind        text NOT NULL DEFAULT 'change' CHECK (kind IN ('change', 'baseline', 'rollback'))
);

CREATE TABLE envoi_change_items (
    generation  bigint NOT NULL REFERENCES envoi_changes (generation),
    object      text NOT NULL CHECK (object IN ('secret', 'grant')),
    name        text NOT NULL,
    action      text NOT NULL CHECK (action IN ('put', 'removed', 'added', 'replaced')),
    -- A secret after the change (none once removed): as `envoi_secrets` held it.
    sealed      text,
    key_id      text,
    template    text,
    -- A grant after the change (none once removed): selector and items.
    definition  jsonb,
    PRIMARY KEY (generation, object, name),
    CHECK (object = 'secret' OR (sealed IS NULL AND key_id IS NULL AND template IS NULL)),
    CHECK (object = 'grant' OR definition IS NULL),
    CHECK (action IN ('removed', CASE object WHEN 'secret' THEN 'put' END, CASE object WHEN 'grant' THEN 'added' END,
        CASE object WHEN 'grant' THEN 'replaced' END)),
    -- A secret put has its value; a grant's definition is written at commit (below).
    CHECK ((action = 'removed') = (num_nonnulls(sealed, template) = 0) OR object = 'grant'),
    CHECK (action <> 'removed' OR definition IS NULL)
);

CREATE INDEX envoi_change_items_name ON envoi_change_items (name, generation);

-- Append-only: the change being written may still be amended by its own transaction (a
-- secret written twice keeps its last value; a grant's definition is written at commit);
-- nothing committed is rewritten or removed. Checked a statement at a time, over its rows.
CREATE FUNCTION envoi_history_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM old_rows o
        WHERE o.generation IS DISTINCT FROM (
            SELECT generation FROM envoi_policy_state WHERE changed_in = pg_current_xact_id())
    ) OR EXISTS (
        SELECT 1 FROM new_rows n
        WHERE n.generation IS DISTINCT FROM (
            SELECT generation FROM envoi_policy_state WHERE changed_in = pg_current_xact_id())
    ) THEN
        RAISE EXCEPTION 'the history of the policy is append-only (% on %)', TG_OP, TG_TABLE_NAME;
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION envoi_history_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the history of the policy is append-only (% on %)', TG_OP, TG_TABLE_NAME;
END
$$;

CREATE TRIGGER envoi_changes_append_only AFTER UPDATE ON envoi_changes
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION envoi_history_append_only();
CREATE TRIGGER envoi_change_items_append_only AFTER UPDATE ON envoi_change_items
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION envoi_history_append_only();
CREATE TRIGGER envoi_changes_no_delete BEFORE DELETE OR TRUNCATE ON envoi_changes
    FOR EACH STATEMENT EXECUTE FUNCTION envoi_history_kept();
CREATE TRIGGER envoi_change_items_no_delete BEFORE DELETE OR TRUNCATE ON envoi_change_items
    FOR EACH STATEMENT EXECUTE FUNCTION envoi_history_kept();

-- A grant's definition: its selector and its items, each without its empty columns.
CREATE FUNCTION envoi_grant_definition(g envoi_grants) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'project', g.project, 'type', g.type, 'object_id', g.object_id,
        'items', coalesce((
            SELECT jsonb_agg(jsonb_strip_nulls(to_jsonb(i) - 'grant_name') ORDER BY i.kind, i.target)
            FROM envoi_grant_items i WHERE i.grant_name = g.name
        ), '[]'::jsonb))
$$;

-- The generation moves once per writing transaction, as before; its first statement now
-- also writes the change's row. The writer names itself in `envoi.actor` (and a rollback
-- says so in `envoi.change`), set for the transaction only.
CREATE OR REPLACE FUNCTION envoi_policy_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE envoi_policy_state SET generation = generation + 1, changed_in = pg_current_xact_id()
        WHERE changed_in IS DISTINCT FROM pg_current_xact_id();
    IF FOUND THEN
        INSERT INTO envoi_changes (generation, actor, kind)
            SELECT generation,
                   coalesce(nullif(current_setting('envoi.actor', true), ''), session_user),
                   coalesce(nullif(current_setting('envoi.change', true), ''), 'change')
            FROM envoi_policy_state;
        -- Delivered at commit.
        PERFORM pg_notify('envoi_policy', '');
    END IF;
    RETURN NULL;
END
$$;

-- The generation of the change being written.
CREATE FUNCTION envoi_current_change() RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT generation FROM envoi_policy_state
$$;

CREATE FUNCTION envoi_secrets_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO envoi_change_items (generation, object, name, action)
            SELECT envoi_current_change(), 'secret', o.name, 'removed' FROM old_rows o
            ON CONFLICT (generation, object, name) DO UPDATE SET action = 'removed',
                sealed = NULL, key_id = NULL, template = NULL;
    ELSE
        INSERT INTO envoi_change_items (generation, object, name, action, sealed, key_id, template)
            SELECT envoi_current_change(), 'secret', n.name, 'put', n.sealed, n.key_id, n.template FROM new_rows n
            ON CONFLICT (generation, object, name) DO UPDATE SET action = 'put',
                sealed = EXCLUDED.sealed, key_id = EXCLUDED.key_id, template = EXCLUDED.template;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER envoi_secrets_history_insert AFTER INSERT ON envoi_secrets
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION envoi_secrets_history();
CREATE TRIGGER envoi_secrets_history_update AFTER UPDATE ON envoi_secrets
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION envoi_secrets_history();
CREATE TRIGGER envoi_secrets_history_delete AFTER DELETE ON envoi_secrets
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION envoi_secrets_history();

-- A grant added, replaced or removed; within one transaction, removed then added again
-- is replaced, and added then changed is still added.
CREATE FUNCTION envoi_grants_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO envoi_change_items (generation, object, name, action)
            SELECT envoi_current_change(), 'grant', o.name, 'removed' FROM old_rows o
            ON CONFLICT (generation, object, name) DO UPDATE SET action = 'removed';
    ELSE
        INSERT INTO envoi_change_items (generation, object, name, action)
            SELECT envoi_current_change(), 'grant', n.name, CASE TG_OP WHEN 'INSERT' THEN 'added' ELSE 'replaced' END
            FROM new_rows n
            ON CONFLICT (generation, object, name) DO UPDATE SET
                action = CASE envoi_change_items.action WHEN 'added' THEN 'added' ELSE 'replaced' END
                WHERE envoi_change_items.action <> EXCLUDED.action;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER envoi_grants_history_insert AFTER INSERT ON envoi_grants
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION envoi_grants_history();
CREATE TRIGGER envoi_grants_history_update AFTER UPDATE ON envoi_grants
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION envoi_grants_history();
CREATE TRIGGER envoi_grants_history_delete AFTER DELETE ON envoi_grants
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION envoi_grants_history();

-- Items changed: their grant changed (a removed grant's row says so already). Its
-- definition is written at commit, once, whatever the statements that built it.
CREATE FUNCTION envoi_grant_items_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO envoi_change_items (generation, object, name, action)
        SELECT envoi_current_change(), 'grant', n.name, 'replaced'
        FROM (SELECT DISTINCT grant_name AS name FROM changed_rows) n
        ON CONFLICT (generation, object, name) DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER envoi_grant_items_history_insert AFTER INSERT ON envoi_grant_items
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION envoi_grant_items_history();
CREATE TRIGGER envoi_grant_items_history_update AFTER UPDATE ON envoi_grant_items
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION envoi_grant_items_history();
CREATE TRIGGER envoi_grant_items_history_delete AFTER DELETE ON envoi_grant_items
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION envoi_grant_items_history();

-- At commit, once per change: each grant it changed, as it is now (a grant no longer
-- there was removed, whatever happened to it before in the transaction).
CREATE FUNCTION envoi_change_complete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Set-based (one join, one aggregate), so that a 100,000-grant import stays quick.
    WITH changed AS (
        SELECT name FROM envoi_change_items
        WHERE generation = NEW.generation AND object = 'grant' AND definition IS NULL
    ), items AS (
        SELECT i.grant_name, jsonb_agg(jsonb_strip_nulls(to_jsonb(i) - 'grant_name') ORDER BY i.kind, i.target) AS items
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

CREATE CONSTRAINT TRIGGER envoi_changes_complete AFTER INSERT ON envoi_changes
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION envoi_change_complete();

-- What the database holds now, as the history's first change.
INSERT INTO envoi_changes (generation, actor, kind)
    SELECT generation, 'migration', 'baseline' FROM envoi_policy_state;
INSERT INTO envoi_change_items (generation, object, name, action, sealed, key_id, template)
    SELECT envoi_current_change(), 'secret', name, 'put', sealed, key_id, template FROM envoi_secrets;
INSERT INTO envoi_change_items (generation, object, name, action, definition)
    SELECT envoi_current_change(), 'grant', g.name, 'added', envoi_grant_definition(g) FROM envoi_grants g;
