//! The target database: sessions, error classes, table definitions and the offsets table.

pub mod offsets;
pub mod tables;

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder};
use rowferry_shared::config::Secret;

/// A failed target operation.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The URL does not parse.
    #[error("invalid target.url: {0}")]
    Url(String),
    /// A statement or the connection failed.
    #[error("{context}: {source}")]
    Sql {
        context: String,
        source: mysql_async::Error,
    },
    /// The target table does not fit the records.
    #[error("{0}")]
    Schema(String),
}

impl TargetError {
    /// Wraps a driver error with what was being done.
    pub fn sql(context: impl Into<String>, source: mysql_async::Error) -> Self {
        TargetError::Sql {
            context: context.into(),
            source,
        }
    }

    /// Whether retrying the same work later can succeed: deadlocks, lock wait timeouts, lost
    /// connections, a server restarting or read-only during a failover.
    pub fn is_transient(&self) -> bool {
        match self {
            TargetError::Sql { source, .. } => is_transient(source),
            TargetError::Url(_) | TargetError::Schema(_) => false,
        }
    }

    /// Whether the target refused the data of a record (a constraint, a value that does not
    /// fit its column): the poison policy applies. Other permanent errors (a privilege
    /// revoked, a table or column dropped) are not the record's fault and stop apply under
    /// either policy, so they never drain a stream into the dead-letter topic.
    pub fn is_record_fault(&self) -> bool {
        matches!(
            self.server_code(),
            // duplicate key, FK parent missing / child exists, NULL into NOT NULL, no default,
            // data too long, out of range, truncated, incorrect value / datetime, CHECK
            // (MariaDB, MySQL), invalid JSON (MySQL), bad geometry, numeric out of range
            Some(
                1062 | 1451
                    | 1452
                    | 1048
                    | 1364
                    | 1406
                    | 1264
                    | 1265
                    | 1366
                    | 1367
                    | 1292
                    | 4025
                    | 3819
                    | 3140
                    | 1416
                    | 1690
                    | 1411
            )
        )
    }

    /// The server error code, if the server refused the statement.
    pub fn server_code(&self) -> Option<u16> {
        match self {
            TargetError::Sql {
                source: mysql_async::Error::Server(e),
                ..
            } => Some(e.code),
            _ => None,
        }
    }
}

fn is_transient(error: &mysql_async::Error) -> bool {
    match error {
        mysql_async::Error::Server(e) => matches!(
            e.code,
            // lock wait timeout, deadlock, too many connections, shutdown in progress,
            // query interrupted, connection killed (MariaDB), read-only (failover),
            // client disconnected for inactivity (MySQL 8), server gone / lost
            1205 | 1213 | 1040 | 1053 | 1317 | 1927 | 1290 | 1792 | 1836 | 4031 | 2006 | 2013
        ),
        mysql_async::Error::Io(_) => true,
        mysql_async::Error::Driver(d) => matches!(
            d,
            mysql_async::DriverError::ConnectionClosed | mysql_async::DriverError::PoolDisconnected
        ),
        mysql_async::Error::Other(_) => false,
        _ => false,
    }
}

/// How to reach the target.
#[derive(Clone)]
pub struct TargetOptions {
    opts: Opts,
    foreign_key_checks: bool,
}

impl TargetOptions {
    /// From the configured URL and password.
    pub fn new(
        url: &str,
        password: Option<&Secret>,
        foreign_key_checks: bool,
    ) -> Result<Self, TargetError> {
        let opts = Opts::from_url(url).map_err(|e| TargetError::Url(e.to_string()))?;
        let mut builder = OptsBuilder::from_opts(opts)
            .prefer_socket(false)
            .stmt_cache_size(0)
            .tcp_keepalive(Some(Duration::from_secs(10)));
        if let Some(password) = password {
            builder = builder.pass(Some(password.expose().to_owned()));
        }
        Ok(Self {
            opts: builder.into(),
            foreign_key_checks,
        })
    }

    /// `host:port` for messages.
    pub fn address(&self) -> String {
        format!("{}:{}", self.opts.ip_or_hostname(), self.opts.tcp_port())
    }

    /// Opens an apply session: UTF-8, UTC, strict, quotes-only escaping, zero values kept,
    /// foreign-key checks as configured.
    pub async fn connect(&self) -> Result<Conn, TargetError> {
        let connect = Conn::new(self.opts.clone());
        let mut conn = tokio::time::timeout(Duration::from_secs(10), connect)
            .await
            .map_err(|_| {
                TargetError::sql(
                    format!("connecting to the target {}", self.address()),
                    mysql_async::Error::Io(mysql_async::IoError::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "no answer within 10 s",
                    ))),
                )
            })?
            .map_err(|e| {
                TargetError::sql(format!("connecting to the target {}", self.address()), e)
            })?;
        let session = format!(
            "SET NAMES utf8mb4, time_zone = '+00:00', \
             sql_mode = 'NO_BACKSLASH_ESCAPES,NO_AUTO_VALUE_ON_ZERO,STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION', \
             foreign_key_checks = {}",
            u8::from(self.foreign_key_checks)
        );
        conn.query_drop(session)
            .await
            .map_err(|e| TargetError::sql("setting up the apply session", e))?;
        Ok(conn)
    }
}

/// Runs `sql`, naming `context` in the error.
pub async fn exec(conn: &mut Conn, sql: &str, context: &str) -> Result<(), TargetError> {
    conn.query_drop(sql)
        .await
        .map_err(|e| TargetError::sql(context.to_owned(), e))
}
