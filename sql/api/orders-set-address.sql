update orders set shipping_address = $2, updated_at = now() where id = $1
returning id, customer_id, shipping_address, status, total, created_at, updated_at
