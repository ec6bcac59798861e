-- A merchant has at most one connection per provider: the pair is the unit of ordering and
-- of canonical ids (`{provider}:{provider_object_id}` would otherwise name two accounts'
-- objects at once). `migrate` refuses, listing them, a database that already holds two
-- connections of one pair before this runs (src/store/sql.rs, `duplicate_pairs`).
CREATE UNIQUE INDEX connections_merchant_provider ON connections (merchant_id, provider);
