select id, category, name, price from products where id = $1
