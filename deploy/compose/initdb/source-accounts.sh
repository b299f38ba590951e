# Sourced by the MySQL/MariaDB image's entrypoint when the source's data directory is created:
# the capture's account, with what change data capture needs — read the binlog as a replica
# (REPLICATION SLAVE), see binlog positions (REPLICATION CLIENT), read tables and
# information_schema (SELECT on *.*, which the capture's start-up check asks for), and on MySQL
# the brief FLUSH TABLES WITH READ LOCK of an initial snapshot (RELOAD).
capture_password=$(cat /run/secrets/source_password)
docker_process_sql --database=mysql <<SQL
CREATE USER 'rowferry'@'%' IDENTIFIED BY '${capture_password}';
GRANT SELECT, REPLICATION SLAVE, REPLICATION CLIENT, RELOAD ON *.* TO 'rowferry'@'%';
SQL
