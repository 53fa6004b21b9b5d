-- The products (jsonb array of ids $1) an order refers to, locked so prices and existence hold until commit.
select id from products where id in (select jsonb_array_elements_text($1::text::jsonb)::bigint) for share
