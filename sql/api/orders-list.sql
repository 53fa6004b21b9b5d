-- Keyset page: ids after $1, in id order ($2 = page size + 1 to detect a next page).
select id, customer_id, shipping_address, status, total, created_at, updated_at from orders where id > $1 order by id limit $2
