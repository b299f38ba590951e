-- The demo shop's tables, on the source and the target alike. Portable SQL for MySQL 8.4 and
-- MariaDB 10.11, run in the current database (deploy/local/demo, the compose databases' init
-- scripts, the image-binaries test). shop-data.sql fills them on the source.
CREATE TABLE customers (
  id INT AUTO_INCREMENT PRIMARY KEY,
  name VARCHAR(100) NOT NULL,
  email VARCHAR(255) NOT NULL,
  balance DECIMAL(12,2) NOT NULL DEFAULT 0,
  created DATETIME(6) NOT NULL,
  UNIQUE KEY (email)
) DEFAULT CHARSET=utf8mb4;

CREATE TABLE products (
  id INT PRIMARY KEY,
  sku CHAR(12) NOT NULL,
  title VARCHAR(200) NOT NULL,
  price DECIMAL(10,2) NOT NULL,
  tags SET('new','sale','eco') NOT NULL DEFAULT '',
  attrs JSON
) DEFAULT CHARSET=utf8mb4;

CREATE TABLE orders (
  id BIGINT AUTO_INCREMENT PRIMARY KEY,
  customer_id INT NOT NULL,
  product_id INT NOT NULL,
  qty SMALLINT UNSIGNED NOT NULL,
  status ENUM('new','paid','shipped','cancelled') NOT NULL DEFAULT 'new',
  placed TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  note TEXT,
  KEY (customer_id)
) DEFAULT CHARSET=utf8mb4;
