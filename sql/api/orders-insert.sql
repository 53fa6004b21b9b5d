-- The total is computed from the products' current prices ($3 = jsonb [{productId, quantity}]), locked beforehand.
insert into orders (customer_id, shipping_address, total)
select $1, $2, coalesce(sum((l ->> 'quantity')::int * p.price), 0)
  from jsonb_array_elements($3::text::jsonb) l
  join products p on p.id = (l ->> 'productId')::bigint
returning id, customer_id, shipping_address, status, total, created_at, updated_at
