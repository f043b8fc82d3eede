-- Orders, written from Order Completed events in the transaction that records them: purchase
-- conditions count orders, not deliveries, so an order reported twice (a shop retrying with a
-- new messageId) counts once.
CREATE TABLE orders (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    contact_id  bigint NOT NULL REFERENCES contacts (id),
    -- The shop's order_id; NULL when the event carried none (each such event is its own order).
    order_id    text,
    total       numeric,
    revenue     numeric,
    currency    text NOT NULL DEFAULT '',
    properties  jsonb NOT NULL DEFAULT '{}',
    occurred_at timestamptz NOT NULL,
    event_id    bigint NOT NULL REFERENCES events (id)
);
-- One order per shop order id and contact: the dedupe of repeated reports. Per contact, not
-- global, so that two shops' id spaces (or two contacts' mistaken reports) cannot hide each
-- other's orders.
CREATE UNIQUE INDEX orders_contact_order_id ON orders (contact_id, order_id) WHERE order_id IS NOT NULL;
-- Spend and purchase conditions ask per contact, in a time window.
CREATE INDEX orders_contact_time ON orders (contact_id, occurred_at);

CREATE TABLE order_lines (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_ref  bigint NOT NULL REFERENCES orders (id),
    product_id text,
    sku        text,
    name       text,
    price      numeric,
    quantity   numeric
);
-- "Purchased product P" looks up an order's lines.
CREATE INDEX order_lines_order ON order_lines (order_ref);

-- Carts: cart events open (or refresh) the contact's open cart, Order Completed converts it,
-- cart_abandoned (from the shop or Cairn's CartWatch) marks it abandoned. A cart event after
-- that opens a new cart, so an abandonment stays on record.
CREATE TABLE carts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    contact_id   bigint NOT NULL REFERENCES contacts (id),
    status       text NOT NULL CHECK (status IN ('open', 'converted', 'abandoned')),
    value        numeric,
    currency     text NOT NULL DEFAULT '',
    -- The cart events' properties, merged: abandoned_cart's where tests them.
    properties   jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    abandoned_at timestamptz,
    converted_at timestamptz
);
-- At most one open cart per contact: the row every cart event refreshes.
CREATE UNIQUE INDEX carts_open ON carts (contact_id) WHERE status = 'open';
-- abandoned_cart conditions ask per contact with a window on abandoned_at.
CREATE INDEX carts_abandoned ON carts (contact_id, abandoned_at) WHERE status = 'abandoned';

-- Backfill from the event log, oldest first, so that purchase and cart conditions keep their
-- answers for history recorded before these tables.
INSERT INTO orders (contact_id, order_id, total, revenue, currency, properties, occurred_at, event_id)
SELECT contact_id, cairn_text(properties -> 'order_id'), cairn_num(properties -> 'total'), cairn_num(properties -> 'revenue'),
       COALESCE(cairn_text(properties -> 'currency'), ''), properties, occurred_at, id
FROM events WHERE name = 'Order Completed'
ORDER BY id
ON CONFLICT (contact_id, order_id) WHERE order_id IS NOT NULL DO NOTHING;

INSERT INTO order_lines (order_ref, product_id, sku, name, price, quantity)
SELECT o.id, cairn_text(p -> 'product_id'), cairn_text(p -> 'sku'), cairn_text(p -> 'name'), cairn_num(p -> 'price'), cairn_num(p -> 'quantity')
FROM orders o
CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(o.properties -> 'products') = 'array' THEN o.properties -> 'products' ELSE '[]' END) p
WHERE jsonb_typeof(p) = 'object';

-- Past abandonments only: which carts were open at upgrade time is not worth replaying the
-- log for; the next cart event opens one. A cart_abandoned with no cart event or order since
-- the contact's previous one reports the same abandonment again, and is not a second cart.
INSERT INTO carts (contact_id, status, value, currency, properties, created_at, updated_at, abandoned_at)
SELECT e.contact_id, 'abandoned', COALESCE(cairn_num(e.properties -> 'value'), cairn_num(e.properties -> 'total')),
       COALESCE(cairn_text(e.properties -> 'currency'), ''), e.properties, e.occurred_at, e.occurred_at, e.occurred_at
FROM events e
WHERE e.name = 'cart_abandoned'
  AND NOT EXISTS (
      SELECT 1 FROM events p
      WHERE p.contact_id = e.contact_id AND p.name = 'cart_abandoned' AND p.id < e.id
        AND NOT EXISTS (
            SELECT 1 FROM events q
            WHERE q.contact_id = e.contact_id AND q.id > p.id AND q.id < e.id
              AND q.name IN ('Product Added', 'Product Removed', 'Cart Viewed', 'Cart Updated', 'Checkout Started', 'cart_updated', 'Order Completed')))
ORDER BY e.id;
