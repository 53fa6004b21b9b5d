-- Lines of the orders whose ids are in the jsonb array $1.
select id, order_id, product_id, quantity, unit_price from order_lines
 where order_id in (select jsonb_array_elements_text($1::text::jsonb)::bigint)
 order by order_id, id
