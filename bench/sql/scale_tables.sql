-- Protected-table scaling: tables scale_{{from}} .. scale_{{to}}, each created and protected in
-- this transaction (the new-table guard is satisfied at commit).
\set ON_ERROR_STOP on
DO $$
BEGIN
    FOR i IN {{from}}..{{to}} LOOP
        EXECUTE format('CREATE TABLE public.scale_%s (id bigint NOT NULL, tenant_id bigint NOT NULL, '
                       'PRIMARY KEY (tenant_id, id))', i);
        PERFORM tenant_guard.protect(format('public.scale_%s', i)::regclass);
    END LOOP;
END
$$;
