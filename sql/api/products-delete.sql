delete from products where id = $1 returning id
