-- A2: tenant_guard preloaded (postgresql.conf) and the extension created; nothing protected.
\set ON_ERROR_STOP on
CREATE EXTENSION tenant_guard;
