-- The lines of each cart, kept from cart events as they are recorded: a products list (Cart
-- Viewed, Cart Updated, Checkout Started, cart_updated, or a cart_abandoned that carries one)
-- replaces them; Product Added adds its product (or adds to its quantity); Product Removed
-- takes it out. Templates list them ({{range .Cart.Lines}}).
CREATE TABLE cart_lines (
    cart_ref   bigint NOT NULL REFERENCES carts (id),
    -- The product's id, else its SKU: the line's identity in the cart.
    product    text NOT NULL,
    product_id text,
    sku        text,
    name       text,
    price      numeric,
    quantity   numeric NOT NULL DEFAULT 1,
    url        text,
    image_url  text,
    added_at   timestamptz NOT NULL,
    PRIMARY KEY (cart_ref, product)
);

-- Recommendations find the orders a product is on ("bought together"), count them, and read
-- the product's latest name and price: all by the product's id, else its SKU.
CREATE INDEX order_lines_product ON order_lines ((COALESCE(product_id, sku)), order_ref);
