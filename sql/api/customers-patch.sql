-- $2 is the validated patch as jsonb: a key present means "set" (null included), a key absent means "keep".
-- updated_at moves only when a value really changes, so a no-op PATCH produces no event.
with next as (
  select c.id,
         case when $2::text::jsonb ? 'name' then $2::text::jsonb ->> 'name' else c.name end as name,
         case when $2::text::jsonb ? 'email' then $2::text::jsonb ->> 'email' else c.email end as email,
         case when $2::text::jsonb ? 'address' then $2::text::jsonb ->> 'address' else c.address end as address,
         case when $2::text::jsonb ? 'phone' then $2::text::jsonb ->> 'phone' else c.phone end as phone
  from customers c where c.id = $1
)
update customers c
   set name = n.name, email = n.email, address = n.address, phone = n.phone,
       updated_at = case when (c.name, c.email, c.address, c.phone) is distinct from (n.name, n.email, n.address, n.phone)
                         then now() else c.updated_at end
  from next n
 where c.id = n.id
returning c.id, c.name, c.email, c.address, c.phone, c.created_at, c.updated_at
