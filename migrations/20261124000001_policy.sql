-- envoi's policy model (SPEC §2) in tables. What the database can check, it checks:
-- names, selectors, item shapes, FILE attributes, sealed-value format and key ids.
-- What it cannot (template references, specificity conflicts) envoi checks by compiling
-- the policy inside the writing transaction before it commits.

CREATE TABLE envoi_secrets (
    name        text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.-]{1,128}$'),
    -- Sealed at rest (SPEC §3): AES-256-GCM with the name as associated data.
    sealed      text CHECK (sealed ~ '^envoi:v1:[A-Za-z0-9]+:[A-Za-z0-9_-]+$'),
    key_id      text,
    -- Or a template over claims and other secrets, which holds no secret itself.
    template    text,
    version     integer NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text NOT NULL CHECK (updated_by <> ''),
    CHECK (num_nonnulls(sealed, template) = 1),
    CHECK ((sealed IS NULL) = (key_id IS NULL)),
    CHECK (sealed IS NULL OR split_part(sealed, ':', 3) = key_id)
);

CREATE TABLE envoi_grants (
    name        text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 200),
    project     text NOT NULL DEFAULT '*' CHECK (project <> '' AND project !~ '[[:cntrl:]]'),
    type        text NOT NULL DEFAULT '*' CHECK (type <> '' AND type !~ '[[:cntrl:]]'),
    object_id   text NOT NULL DEFAULT '*' CHECK (object_id <> '' AND object_id !~ '[[:cntrl:]]'),
    version     integer NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text NOT NULL CHECK (updated_by <> '')
);

CREATE TABLE envoi_grant_items (
    grant_name          text NOT NULL REFERENCES envoi_grants (name) ON DELETE CASCADE ON UPDATE CASCADE,
    kind                text NOT NULL CHECK (kind IN ('ENV', 'FILE')),
    target              text NOT NULL,
    -- Exactly one source: a named secret, an inline sealed value (sealed for the ENV key
    -- or FILE path), or an inline template.
    secret              text REFERENCES envoi_secrets (name) ON UPDATE CASCADE DEFERRABLE INITIALLY DEFERRED,
    sealed              text CHECK (sealed ~ '^envoi:v1:[A-Za-z0-9]+:[A-Za-z0-9_-]+$'),
    key_id              text,
    template            text,
    encoding            text CHECK (encoding IN ('utf-8', 'base64')),
    permissions_policy  text CHECK (permissions_policy IN ('AlwaysSet', 'KeepOrSet')),
    mode                text CHECK (mode ~ '^[0-7]{4}$'),
    owner_policy        text CHECK (owner_policy IN ('AlwaysSetExplicit', 'KeepOrSetExplicit', 'AlwaysSetInherited', 'KeepOrSetInherited')),
    owner_value         text CHECK (owner_value <> ''),
    group_policy        text CHECK (group_policy IN ('AlwaysSetExplicit', 'KeepOrSetExplicit', 'AlwaysSetInherited', 'KeepOrSetInherited')),
    group_value         text CHECK (group_value <> ''),
    PRIMARY KEY (grant_name, kind, target),
    CHECK (num_nonnulls(secret, sealed, template) = 1),
    CHECK ((sealed IS NULL) = (key_id IS NULL)),
    CHECK (sealed IS NULL OR split_part(sealed, ':', 3) = key_id),
    CHECK (kind <> 'ENV' OR target ~ '^[A-Za-z_][A-Za-z0-9_]*$'),
    CHECK (kind <> 'FILE' OR (target LIKE '/%' AND target NOT LIKE '%/' AND target !~ '[[:cntrl:]]')),
    CHECK (kind = 'FILE' OR num_nonnulls(encoding, permissions_policy, mode, owner_policy, owner_value, group_policy, group_value) = 0),
    CHECK ((mode IS NULL) = (permissions_policy IS NULL)),
    CHECK (owner_policy IS NOT NULL OR owner_value IS NULL),
    CHECK (owner_policy IS NULL OR (owner_policy LIKE '%Explicit') = (owner_value IS NOT NULL)),
    CHECK (group_policy IS NOT NULL OR group_value IS NULL),
    CHECK (group_policy IS NULL OR (group_policy LIKE '%Explicit') = (group_value IS NOT NULL))
);

CREATE INDEX envoi_grant_items_secret ON envoi_grant_items (secret) WHERE secret IS NOT NULL;

-- One row: bumped by every change, so that a replica's periodic check is one cheap read.
CREATE TABLE envoi_policy_state (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    generation  bigint NOT NULL
);
INSERT INTO envoi_policy_state (singleton, generation) VALUES (true, 1);

CREATE FUNCTION envoi_policy_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE envoi_policy_state SET generation = generation + 1;
    -- Delivered at commit, once per transaction however many statements changed rows.
    PERFORM pg_notify('envoi_policy', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER envoi_secrets_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON envoi_secrets
    FOR EACH STATEMENT EXECUTE FUNCTION envoi_policy_changed();
CREATE TRIGGER envoi_grants_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON envoi_grants
    FOR EACH STATEMENT EXECUTE FUNCTION envoi_policy_changed();
CREATE TRIGGER envoi_grant_items_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON envoi_grant_items
    FOR EACH STATEMENT EXECUTE FUNCTION envoi_policy_changed();
