-- Lines go with the order (on delete cascade).
delete from orders where id = $1 returning id
