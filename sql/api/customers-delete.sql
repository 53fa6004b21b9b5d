delete from customers where id = $1 returning id
