-- One transaction of the demo's write load on the tables of shop-schema.sql: an order placed, one
-- shipped, a customer charged, an old order deleted, a price changed. Run it again and again
-- (deploy/compose's demo-load service, the image-binaries test).
SET @customer = 1 + FLOOR(RAND() * 500), @product = 1 + FLOOR(RAND() * 50);
START TRANSACTION;
INSERT INTO orders (customer_id, product_id, qty, note)
  VALUES (@customer, @product, 1 + FLOOR(RAND() * 5), CONCAT('live order at ', NOW(6)));
UPDATE orders SET status = 'shipped' WHERE status = 'paid' ORDER BY id LIMIT 1;
UPDATE customers SET balance = balance - 9.99 WHERE id = @customer;
DELETE FROM orders WHERE status = 'shipped' ORDER BY id LIMIT 1;
UPDATE products SET price = price * 1.01, tags = 'sale' WHERE id = @product;
COMMIT;
