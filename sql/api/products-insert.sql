insert into products (category, name, price) values ($1, $2, $3::numeric) returning id, category, name, price
