-- The last failure of a connection's provider API (a certificate not accepted, a key
-- refused, a host that cannot be reached), shown by GET /admin/v1/connections/{id} and
-- `billsync doctor`. Written at most once a minute per distinct failure (src/actors/fetch.rs).
ALTER TABLE connections ADD COLUMN last_provider_error_kind TEXT;
ALTER TABLE connections ADD COLUMN last_provider_error TEXT;
ALTER TABLE connections ADD COLUMN last_provider_error_at BIGINT;
