-- The demo shop's first rows on the source (500 customers, 50 products, 2000 orders), read
-- by the capture's initial snapshot. Portable SQL for MySQL 8.4 and MariaDB 10.11.

-- Numbers 1..2000 in a temporary table: not written to a ROW binlog, so not captured.
CREATE TEMPORARY TABLE demo_numbers (n INT PRIMARY KEY);
INSERT INTO demo_numbers (n)
SELECT 1 + a.d + 10 * b.d + 100 * c.d + 1000 * e.d
FROM (SELECT 0 AS d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4
      UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8
      UNION ALL SELECT 9) AS a
CROSS JOIN (SELECT 0 AS d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3
      UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7
      UNION ALL SELECT 8 UNION ALL SELECT 9) AS b
CROSS JOIN (SELECT 0 AS d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3
      UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7
      UNION ALL SELECT 8 UNION ALL SELECT 9) AS c
CROSS JOIN (SELECT 0 AS d UNION ALL SELECT 1) AS e;

INSERT INTO customers (name, email, balance, created)
SELECT CONCAT('Customer ', n), CONCAT('c', n, '@example.com'), n * 1.25,
       '2024-01-01 00:00:00' + INTERVAL n MINUTE
FROM demo_numbers WHERE n <= 500 ORDER BY n;

INSERT INTO products (id, sku, title, price, tags, attrs)
SELECT n, CONCAT('SKU-', LPAD(n, 8, '0')), CONCAT('Product ', n, ' — «déjà vu»'), n * 3.99,
       ELT(1 + n % 4, '', 'new', 'sale,eco', 'new,sale,eco'),
       JSON_OBJECT('weight', n / 10, 'colors', JSON_ARRAY('red', 'blue'))
FROM demo_numbers WHERE n <= 50 ORDER BY n;

INSERT INTO orders (customer_id, product_id, qty, status, placed, note)
SELECT 1 + n % 500, 1 + n % 50, 1 + n % 7, ELT(1 + n % 3, 'new', 'paid', 'shipped'),
       '2024-06-01 12:00:00.000' + INTERVAL n SECOND, IF(n % 5 = 0, NULL, CONCAT('note ', n))
FROM demo_numbers ORDER BY n;

DROP TEMPORARY TABLE demo_numbers;
