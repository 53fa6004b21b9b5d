-- Serialises status changes and address edits of one order.
select id, status, shipping_address from orders where id = $1 for update
