-- Initial schema and seed data for the Nostromo orchestrator.

create table users (
  username        text primary key,
  password_sha256 text not null,  -- hex sha256 of the password (demo app, no salt)
  tenant          text not null
);

-- Both demo users have the password "special-order-937" (not a word of the project's own paths and names: the deploy redacts secret values wherever they appear).
insert into users (username, password_sha256, tenant) values
  ('admin',  '34f86a5f72f33e6a93ee95c3122324384ad7837593f328238b75a34f81e3080d', 'weyland'),
  ('ripley', '34f86a5f72f33e6a93ee95c3122324384ad7837593f328238b75a34f81e3080d', 'yutani');

create table indicadores (
  fecha date primary key,
  uf    numeric(12, 2) not null,
  utm   numeric(12, 2) not null
);

insert into indicadores (fecha, uf, utm) values
  ('2024-01-02', 36789.36, 64666.00);

create table items (
  id     serial primary key,
  tenant text not null,
  name   text not null
);

insert into items (tenant, name) values
  ('weyland', 'Cargo manifest'),
  ('weyland', 'Atmosphere processor'),
  ('yutani',  'Colony survey'),
  ('yutani',  'Cryo pod inventory');
