select id, customer_id, shipping_address, status, total, created_at, updated_at from orders where id = $1
