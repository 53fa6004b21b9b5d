-- The demo domain (customers, products, orders with order lines), kept apart from the capture baseline (001) so it can
-- become optional.
create table public.customers (
  id bigint generated always as identity primary key,
  name text not null,
  email text not null unique,
  address text,
  phone text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table public.products (
  id bigint generated always as identity primary key,
  category text not null,
  name text not null,
  price numeric(12,2) not null check (price >= 0)
);

create table public.orders (
  id bigint generated always as identity primary key,
  customer_id bigint not null references public.customers,
  shipping_address text not null,
  status text not null default 'PLACED'
    check (status in ('PLACED', 'PAYMENT_CONFIRMED', 'SHIPPED', 'DELIVERED', 'CANCELLED')),
  total numeric(12,2) not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index orders_customer_id on public.orders (customer_id);

create table public.order_lines (
  id bigint generated always as identity primary key,
  order_id bigint not null references public.orders on delete cascade,
  product_id bigint not null references public.products,
  quantity int not null check (quantity > 0),
  unit_price numeric(12,2) not null
);
create index order_lines_order_id on public.order_lines (order_id);
