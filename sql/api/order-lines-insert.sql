-- One line per element of $2 (jsonb [{productId, quantity}]), in request order, at the product's current price.
insert into order_lines (order_id, product_id, quantity, unit_price)
select $1, p.id, (l.line ->> 'quantity')::int, p.price
  from jsonb_array_elements($2::text::jsonb) with ordinality as l(line, n)
  join products p on p.id = (l.line ->> 'productId')::bigint
 order by l.n
returning id, order_id, product_id, quantity, unit_price
