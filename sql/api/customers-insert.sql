insert into customers (name, email, address, phone) values ($1, $2, $3, $4)
returning id, name, email, address, phone, created_at, updated_at
