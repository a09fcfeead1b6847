-- Literals (`value = "eu"`, for what is not secret) are stored sealed like every value,
-- and marked, so that `db export` can write them back as literals: an exported policy
-- then reads in review as the TOML it was imported from. A value written by `secret
-- put` or restored by `db rollback` is not marked (it may be a secret).
ALTER TABLE envoi_secrets ADD COLUMN literal boolean NOT NULL DEFAULT false
    CHECK (NOT literal OR sealed IS NOT NULL);
ALTER TABLE envoi_grant_items ADD COLUMN literal boolean NOT NULL DEFAULT false
    CHECK (NOT literal OR sealed IS NOT NULL);
