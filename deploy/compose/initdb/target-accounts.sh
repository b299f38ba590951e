# Sourced by the MySQL image's entrypoint when the target's data directory is created: the
# apply's account — write the replicated tables, keep its offsets in the `rowferry` database
# (created by the apply at start).
apply_password=$(cat /run/secrets/target_password)
docker_process_sql --database=mysql <<SQL
CREATE USER 'rowferry'@'%' IDENTIFIED BY '${apply_password}';
GRANT SELECT, INSERT, UPDATE, DELETE ON demo_shop.* TO 'rowferry'@'%';
GRANT CREATE, SELECT, INSERT, UPDATE ON rowferry.* TO 'rowferry'@'%';
SQL
