-- $2 is the validated patch as jsonb: a key present means "set", a key absent means "keep". A no-op changes nothing.
with next as (
  select p.id,
         case when $2::text::jsonb ? 'category' then $2::text::jsonb ->> 'category' else p.category end as category,
         case when $2::text::jsonb ? 'name' then $2::text::jsonb ->> 'name' else p.name end as name,
         case when $2::text::jsonb ? 'price' then ($2::text::jsonb ->> 'price')::numeric else p.price end as price
  from products p where p.id = $1
)
update products p set category = n.category, name = n.name, price = n.price
  from next n
 where p.id = n.id
returning p.id, p.category, p.name, p.price
