-- The history is kept for a while, not for ever (SPEC §2, Stores): `envoi db prune` (and
-- every hundredth change) compacts what is older than both `store.history_keep_changes`
-- changes and `store.history_keep_days` days. Compacting keeps, for every secret and grant,
-- its last entry at the cut-off, so that the policy of every generation from the cut-off
-- on can still be rebuilt (a rollback restores its sealed values as they were); what only
-- older generations needed goes. `history_from` is the first generation it can rebuild.

ALTER TABLE envoi_policy_state ADD COLUMN history_from bigint NOT NULL DEFAULT 0;

-- Deleting from the history is refused, except by the compaction below, which says so
-- for its own transaction. Truncating is always refused.
CREATE OR REPLACE FUNCTION envoi_history_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('envoi.compacting', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'the history of the policy is append-only (% on %)', TG_OP, TG_TABLE_NAME;
END
$$;

-- Compacts the history up to the newest generation older than `keep_for` and not among
-- the last `keep_changes`; returns how many entries went.
CREATE FUNCTION envoi_compact_history(keep_changes bigint, keep_for interval) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    current_generation bigint;
    cutoff bigint;
    gone bigint;
    more bigint;
BEGIN
    -- After the writers before it, and before the next.
    SELECT generation INTO current_generation FROM envoi_policy_state FOR UPDATE;
    SELECT max(generation) INTO cutoff FROM envoi_changes
        WHERE changed_at < now() - keep_for AND generation <= current_generation - keep_changes;
    IF cutoff IS NULL OR cutoff <= (SELECT history_from FROM envoi_policy_state) THEN
        RETURN 0;
    END IF;
    PERFORM set_config('envoi.compacting', 'on', true);
    -- An entry a later one (up to the cut-off) replaces.
    DELETE FROM envoi_change_items i
        WHERE i.generation < cutoff AND EXISTS (
            SELECT 1 FROM envoi_change_items later
            WHERE later.object = i.object AND later.name = i.name
              AND later.generation > i.generation AND later.generation <= cutoff);
    GET DIAGNOSTICS gone = ROW_COUNT;
    -- A removal before the cut-off: the name is absent at the cut-off without it.
    DELETE FROM envoi_change_items WHERE generation < cutoff AND action = 'removed';
    GET DIAGNOSTICS more = ROW_COUNT;
    DELETE FROM envoi_changes c
        WHERE c.generation < cutoff
          AND NOT EXISTS (SELECT 1 FROM envoi_change_items i WHERE i.generation = c.generation);
    UPDATE envoi_policy_state SET history_from = cutoff;
    PERFORM set_config('envoi.compacting', 'off', true);
    RETURN gone + more;
END
$$;
