-- Keyset page: ids after $1, in id order ($2 = page size + 1 to detect a next page).
select id, name, email, address, phone, created_at, updated_at from customers where id > $1 order by id limit $2
