-- A small shop schema for the SQL execution-reward tests (built into a .db file by the test).
CREATE TABLE customers (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  city TEXT NOT NULL,
  joined INTEGER NOT NULL
);
CREATE TABLE products (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  category TEXT NOT NULL,
  price REAL NOT NULL
);
CREATE TABLE orders (
  id INTEGER PRIMARY KEY,
  customer_id INTEGER NOT NULL REFERENCES customers(id),
  product_id INTEGER NOT NULL REFERENCES products(id),
  quantity INTEGER NOT NULL,
  day TEXT NOT NULL
);
INSERT INTO customers VALUES
  (1, 'Ada', 'London', 2019), (2, 'Grace', 'New York', 2020), (3, 'Alan', 'London', 2021),
  (4, 'Edsger', 'Amsterdam', 2019), (5, 'Barbara', 'Boston', 2022), (6, 'Donald', 'Stanford', 2020);
INSERT INTO products VALUES
  (1, 'Keyboard', 'hardware', 49.5), (2, 'Mouse', 'hardware', 19.0), (3, 'Monitor', 'hardware', 199.99),
  (4, 'Compiler', 'software', 99.0), (5, 'Editor', 'software', 0.0), (6, 'Cable', 'hardware', 5.25);
INSERT INTO orders VALUES
  (1, 1, 1, 2, '2024-01-03'), (2, 1, 4, 1, '2024-01-05'), (3, 2, 2, 3, '2024-02-11'),
  (4, 3, 3, 1, '2024-02-12'), (5, 3, 6, 4, '2024-02-20'), (6, 4, 4, 2, '2024-03-01'),
  (7, 5, 5, 1, '2024-03-02'), (8, 2, 1, 1, '2024-03-15'), (9, 6, 3, 2, '2024-03-20'),
  (10, 1, 2, 1, '2024-04-01'), (11, 4, 6, 10, '2024-04-02'), (12, 2, 4, 1, '2024-04-09');
