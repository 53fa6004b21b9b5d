select id, name, email, address, phone, created_at, updated_at from customers where id = $1
