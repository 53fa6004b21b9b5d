-- Keyset page: ids after $1, in id order ($2 = page size + 1 to detect a next page).
select id, category, name, price from products where id > $1 order by id limit $2
