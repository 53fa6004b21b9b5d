select id from customers where id = $1 for share
