//! rowferry-capture: reads a MySQL/MariaDB binlog and publishes one Kafka record per changed
//! row, exactly once.

pub mod binlog;
