-- The generation moves once per writing transaction, however many statements it runs.
-- Before, every statement on the policy tables bumped it: a change written row by row
-- rewrote the one `envoi_policy_state` row once per row, and a bulk change (`db import`
-- of 100,000 workloads) spent its time there. Existing rows are kept as they are; the
-- generation keeps counting from where it is.

-- The transaction that last moved the generation.
ALTER TABLE envoi_policy_state ADD COLUMN changed_in xid8;

CREATE OR REPLACE FUNCTION envoi_policy_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Only the transaction's first write statement matches; the later ones read one row.
    UPDATE envoi_policy_state SET generation = generation + 1, changed_in = pg_current_xact_id()
        WHERE changed_in IS DISTINCT FROM pg_current_xact_id();
    IF FOUND THEN
        -- Delivered at commit.
        PERFORM pg_notify('envoi_policy', '');
    END IF;
    RETURN NULL;
END
$$;
