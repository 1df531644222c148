-- A3 (and A4): tenant_guard preloaded, the extension created, both tables protected.
\set ON_ERROR_STOP on
CREATE EXTENSION tenant_guard;
SELECT tenant_guard.protect('public.items');
SELECT tenant_guard.protect('public.items_skew');
