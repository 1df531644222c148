-- The example's schema and demo data, in the database "invoices". Run as a superuser:
-- db/setup.sh does, after creating the database and the roles (db/roles.sql).
\set ON_ERROR_STOP on
CREATE EXTENSION IF NOT EXISTS tenant_guard;
GRANT USAGE, CREATE ON SCHEMA public TO invoices_owner;

-- Only a signed tenant token may set the tenant in this database: SET LOCAL, set_config() and
-- tenant_guard.set_tenant() are refused for every session of it.
ALTER DATABASE invoices SET tenant_guard.require_token = on;

-- The migration: tables created and protected in one transaction, by their owner.
SET ROLE invoices_owner;
BEGIN;

CREATE TABLE customers (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id text NOT NULL DEFAULT tenant_guard.current_tenant(),
    name      text NOT NULL,
    email     text NOT NULL,
    city      text NOT NULL,
    UNIQUE (tenant_id, id)            -- the target of the composite foreign key below
);

CREATE TABLE invoices (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- An INSERT that leaves tenant_id out gets the transaction's claim.
    tenant_id   text NOT NULL DEFAULT tenant_guard.current_tenant(),
    number      text NOT NULL,
    customer_id bigint NOT NULL,
    description text NOT NULL,
    amount      numeric(12,2) NOT NULL CHECK (amount > 0),
    status      text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'paid', 'void')),
    issued_on   date NOT NULL DEFAULT current_date,
    UNIQUE (tenant_id, number),
    -- The tenant is part of the reference: an invoice can't point at another tenant's customer.
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id)
);
CREATE INDEX ON invoices (tenant_id, customer_id);

INSERT INTO customers (tenant_id, name, email, city) VALUES
    ('acme',   'Road Runner Deliveries',     'beep@roadrunner.example',        'Albuquerque'),
    ('acme',   'Wile E. Coyote Engineering', 'wile@coyote.example',            'Monument Valley'),
    ('acme',   'Marvin Martian Optics',      'marvin@mars.example',            'Mars Base One'),
    ('globex', 'Hank Scorpio Ventures',      'hank@scorpio.example',           'Cypress Creek'),
    ('globex', 'Springfield Nuclear Plant',  'monty@snpp.example',             'Springfield'),
    ('globex', 'Hammock District Co.',       'hammocks@hammockdistrict.example', 'North Haverbrook');

INSERT INTO invoices (tenant_id, number, customer_id, description, amount, status, issued_on)
SELECT c.tenant_id, v.number, c.id, v.description, v.amount, v.status, v.issued_on::date
FROM (VALUES
    ('acme',   'ACME-1001', 'Road Runner Deliveries',     'Rocket-powered roller skates',  349.00, 'paid', '2025-01-14'),
    ('acme',   'ACME-1002', 'Wile E. Coyote Engineering', 'Giant rubber band, industrial', 120.50, 'open', '2025-02-03'),
    ('acme',   'ACME-1003', 'Wile E. Coyote Engineering', 'Portable hole, three units',    899.99, 'open', '2025-02-20'),
    ('acme',   'ACME-1004', 'Marvin Martian Optics',      'Illudium Q-36 spare parts',    4200.00, 'open', '2025-03-02'),
    ('globex', 'GLX-2001',  'Hank Scorpio Ventures',      'Doomsday device maintenance', 50000.00, 'open', '2025-01-09'),
    ('globex', 'GLX-2002',  'Springfield Nuclear Plant',  'Reactor coolant audit',        7800.00, 'paid', '2025-02-11'),
    ('globex', 'GLX-2003',  'Hammock District Co.',       'Hammock landscaping',          1250.00, 'open', '2025-03-05')
) AS v (tenant_id, number, customer, description, amount, status, issued_on)
JOIN customers c ON c.tenant_id = v.tenant_id AND c.name = v.customer;

GRANT SELECT, INSERT ON customers, invoices TO invoices_app;

SELECT tenant_guard.protect('customers');
SELECT tenant_guard.protect('invoices');
COMMIT;
RESET ROLE;
