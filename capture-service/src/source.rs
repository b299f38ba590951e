//! The source server: connecting, finding out what it is, refusing what cannot work, resolving
//! start positions and opening the binlog stream.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest, Conn, Opts, OptsBuilder};
use rowferry_shared::position::{BinlogFilePosition, Flavor, GtidSet};

use crate::binlog::charset::CollationTable;
use crate::binlog::table_map::{ColumnDefinition, TableDefinition};
use rowferry_shared::event::{ColumnType, RowKey, TableId};

/// What went wrong with the source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The URL does not parse.
    #[error("invalid source.url: {0}")]
    Url(String),
    /// The server could not be reached or refused the login.
    #[error("cannot connect to the source at {address}: {source}")]
    Connect {
        address: String,
        source: mysql_async::Error,
    },
    /// A query failed.
    #[error("source query `{query}` failed: {source}")]
    Query {
        query: String,
        source: mysql_async::Error,
    },
    /// The server is configured in a way rowferry cannot capture from.
    #[error("the source cannot be captured: {problem}. Fix: {fix}")]
    Refused { problem: String, fix: String },
    /// The binlog stream failed.
    #[error("binlog stream from the source failed: {0}")]
    Stream(mysql_async::Error),
    /// The source ended the binlog stream.
    #[error(
        "the source closed the binlog stream ({detail}); if this repeats, another replica may \
         be registered with server_id {server_id}: the source drops the older of two \
         replicas with one server_id, so give each its own source.server_id"
    )]
    StreamClosed { server_id: u32, detail: String },
}

impl SourceError {
    /// Whether retrying later can help (network and server availability problems).
    pub fn is_transient(&self) -> bool {
        match self {
            SourceError::Connect { source, .. }
            | SourceError::Query { source, .. }
            | SourceError::Stream(source) => !matches!(source, mysql_async::Error::Server(e) if
                // access denied, unknown database, purged binlog, bad server id …
                matches!(e.code, 1044 | 1045 | 1049 | 1227 | 1236 | 1064 | 1193)),
            SourceError::StreamClosed { .. } => true,
            SourceError::Url(_) | SourceError::Refused { .. } => false,
        }
    }
}

pub(crate) fn refused(problem: impl Into<String>, fix: impl Into<String>) -> SourceError {
    SourceError::Refused {
        problem: problem.into(),
        fix: fix.into(),
    }
}

/// Connection options from the URL and the password.
pub fn connection_opts(url: &str, password: Option<&str>) -> Result<Opts, SourceError> {
    let opts = Opts::from_url(url).map_err(|e| SourceError::Url(e.to_string()))?;
    let mut builder = OptsBuilder::from_opts(opts)
        .prefer_socket(false)
        .wait_timeout(Some(28_800));
    if let Some(password) = password {
        builder = builder.pass(Some(password));
    }
    Ok(builder.into())
}

/// `text` as the inside of a single-quoted SQL string literal.
pub(crate) fn sql_string(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\'', "''")
}

/// Opens a connection, naming the address in the error.
pub async fn connect(opts: &Opts) -> Result<Conn, SourceError> {
    Conn::new(opts.clone())
        .await
        .map_err(|source| SourceError::Connect {
            address: format!("{}:{}", opts.ip_or_hostname(), opts.tcp_port()),
            source,
        })
}

pub(crate) async fn query_row(
    conn: &mut Conn,
    sql: &str,
) -> Result<Option<mysql_async::Row>, SourceError> {
    conn.query_first(sql)
        .await
        .map_err(|source| SourceError::Query {
            query: sql.to_owned(),
            source,
        })
}

pub(crate) async fn query_rows(
    conn: &mut Conn,
    sql: &str,
) -> Result<Vec<mysql_async::Row>, SourceError> {
    conn.query(sql).await.map_err(|source| SourceError::Query {
        query: sql.to_owned(),
        source,
    })
}

/// What the source is, as far as capture cares.
#[derive(Debug, Clone)]
pub struct SourceFacts {
    /// MySQL or MariaDB.
    pub flavor: Flavor,
    /// `@@version`.
    pub version: String,
    /// The source's own `server_id`.
    pub server_id: u32,
    /// Whether tables carry their own metadata in the binlog (`binlog_row_metadata=FULL`);
    /// without it, information_schema is read instead, which is weaker across DDL.
    pub full_row_metadata: bool,
    /// Whether the source assigns GTIDs (always on MariaDB; `gtid_mode=ON` on MySQL).
    pub gtids: bool,
    /// Whether binlog events carry CRC32 checksums (`binlog_checksum`).
    pub checksums: bool,
    /// Collation ids of this server.
    pub collations: CollationTable,
}

pub(crate) fn text(row: &mysql_async::Row, i: usize) -> String {
    match row.as_ref(i) {
        Some(mysql_async::Value::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
        Some(mysql_async::Value::Int(n)) => n.to_string(),
        Some(mysql_async::Value::UInt(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// Reads the source's configuration and refuses what cannot be captured, naming the fix.
pub async fn preflight(conn: &mut Conn, our_server_id: u32) -> Result<SourceFacts, SourceError> {
    let row = query_row(
        conn,
        "SELECT @@version, @@server_id, @@log_bin, @@binlog_format, @@binlog_row_image",
    )
    .await?
    .ok_or_else(|| refused("the source returned no variables", "check the account"))?;
    let version = text(&row, 0);
    let flavor = if version.to_ascii_lowercase().contains("mariadb") {
        Flavor::MariaDb
    } else {
        Flavor::MySql
    };
    let server_id: u32 = text(&row, 1).parse().unwrap_or(0);
    let log_bin = text(&row, 2);
    let format = text(&row, 3).to_ascii_uppercase();
    let image = text(&row, 4).to_ascii_uppercase();
    if log_bin != "1" && !log_bin.eq_ignore_ascii_case("ON") {
        return Err(refused(
            "binary logging is off (log_bin)",
            "start the source with log_bin (and binlog_format=ROW, binlog_row_image=FULL)",
        ));
    }
    if format != "ROW" {
        return Err(refused(
            format!("binlog_format is {format}, row changes need ROW"),
            "SET GLOBAL binlog_format='ROW' and put binlog_format=ROW in the server config",
        ));
    }
    if image != "FULL" {
        return Err(refused(
            format!("binlog_row_image is {image}, rows need every column"),
            "SET GLOBAL binlog_row_image='FULL' and put binlog_row_image=FULL in the server config",
        ));
    }
    if server_id == our_server_id {
        return Err(refused(
            format!("source.server_id {our_server_id} is the source's own server_id"),
            "give the capture a server_id no server or replica of this source uses",
        ));
    }
    // MySQL lets REPLICATION SLAVE (checked above) list replicas; MariaDB wants more.
    let may_list_replicas = check_privileges(conn).await? || flavor == Flavor::MySql;
    // Other replicas registered with our id would have their stream cut (or cut ours).
    if !may_list_replicas {
        tracing::debug!(
            "the capture account may not list replicas; server_id clashes with other replicas are not checked"
        );
    } else if let Some(hosts) = replicas(conn).await {
        for host in hosts {
            if text(&host, 0).parse::<u32>().ok() == Some(our_server_id) {
                return Err(refused(
                    format!("server_id {our_server_id} is already used by a replica of the source"),
                    "give each capture instance its own source.server_id",
                ));
            }
        }
    }

    let full_row_metadata = match conn
        .query_first::<mysql_async::Row, _>("SELECT @@binlog_row_metadata")
        .await
    {
        Ok(Some(row)) => text(&row, 0).eq_ignore_ascii_case("FULL"),
        _ => false,
    };
    let gtids = match flavor {
        Flavor::MariaDb => true,
        Flavor::MySql => matches!(
            conn.query_first::<mysql_async::Row, _>("SELECT @@gtid_mode").await,
            Ok(Some(row)) if text(&row, 0).eq_ignore_ascii_case("ON")
        ),
    };
    let checksums = match conn
        .query_first::<mysql_async::Row, _>("SELECT @@binlog_checksum")
        .await
    {
        Ok(Some(row)) => !text(&row, 0).eq_ignore_ascii_case("NONE"),
        _ => false,
    };
    let collation_rows = query_rows(conn, CollationTable::QUERY).await?;
    let collations = CollationTable::from_rows(collation_rows.iter().filter_map(|row| {
        let id = text(row, 0).parse().ok()?;
        let max_len = text(row, 2).parse().ok()?;
        Some((id, text(row, 1), max_len))
    }));
    Ok(SourceFacts {
        flavor,
        version,
        server_id,
        full_row_metadata,
        gtids,
        checksums,
        collations,
    })
}

/// The source's registered replicas (server id first): `SHOW SLAVE HOSTS`, or `SHOW REPLICAS`
/// where MySQL 8.4 removed the old name; `None` when the server refuses.
async fn replicas(conn: &mut Conn) -> Option<Vec<mysql_async::Row>> {
    match conn.query("SHOW SLAVE HOSTS").await {
        Ok(hosts) => Some(hosts),
        Err(mysql_async::Error::Server(e)) if e.code == PARSE_ERROR => {
            conn.query("SHOW REPLICAS").await.ok()
        }
        Err(_) => None,
    }
}

/// ER_PARSE_ERROR: how a server answers a statement name it no longer knows.
const PARSE_ERROR: u16 = 1064;

/// REPLICATION SLAVE (read the binlog), REPLICATION CLIENT / BINLOG MONITOR (list binlogs) and
/// SELECT (information_schema fallback, snapshots) on `*.*`. Returns whether the account may
/// also list the source's replicas (`SHOW SLAVE HOSTS`).
async fn check_privileges(conn: &mut Conn) -> Result<bool, SourceError> {
    let grants = query_rows(conn, "SHOW GRANTS").await?;
    let global: Vec<String> = grants
        .iter()
        .map(|row| text(row, 0).to_ascii_uppercase())
        .filter(|g| g.contains(" ON *.* "))
        .collect();
    let has = |privilege: &str| {
        global
            .iter()
            .any(|g| g.contains("ALL PRIVILEGES") || g.contains(privilege))
    };
    let mut missing = Vec::new();
    if !has("REPLICATION SLAVE") && !has("REPLICATION REPLICA") {
        missing.push("REPLICATION SLAVE");
    }
    if !has("REPLICATION CLIENT") && !has("BINLOG MONITOR") && !has("SUPER") {
        missing.push("REPLICATION CLIENT");
    }
    if !has("SELECT") {
        missing.push("SELECT");
    }
    if missing.is_empty() {
        return Ok(has("REPLICATION MASTER ADMIN") || has("SUPER"));
    }
    Err(refused(
        format!("the capture account lacks {}", missing.join(", ")),
        format!("GRANT {} ON *.* TO the capture account", missing.join(", ")),
    ))
}

/// Where streaming starts, in the form the server understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStart {
    /// File and position (the file is empty for a pure GTID start).
    pub file: BinlogFilePosition,
    /// The GTIDs already done, when the source uses GTIDs: streaming resumes after them.
    pub gtids: Option<GtidSet>,
}

/// The binlog files the source still has, oldest first.
pub async fn binlog_files(conn: &mut Conn) -> Result<Vec<String>, SourceError> {
    let rows = query_rows(conn, "SHOW BINARY LOGS").await?;
    Ok(rows.iter().map(|row| text(row, 0)).collect())
}

/// The binlog's status row (file, position, …, executed GTID set): `SHOW MASTER STATUS`, which
/// MariaDB and MySQL before 8.4 know, else `SHOW BINARY LOG STATUS`, its name since MySQL 8.2
/// (8.4 removed the old one). `None` when binary logging is off.
pub(crate) async fn binlog_status(
    conn: &mut Conn,
) -> Result<Option<mysql_async::Row>, SourceError> {
    match query_row(conn, "SHOW MASTER STATUS").await {
        Err(SourceError::Query {
            source: mysql_async::Error::Server(e),
            ..
        }) if e.code == PARSE_ERROR => query_row(conn, "SHOW BINARY LOG STATUS").await,
        other => other,
    }
}

/// Where the binlog ends now.
pub async fn binlog_end(conn: &mut Conn) -> Result<BinlogFilePosition, SourceError> {
    let row = binlog_status(conn).await?.ok_or_else(|| {
        refused(
            "the binlog status (SHOW MASTER STATUS) is empty: binary logging is off",
            "enable log_bin",
        )
    })?;
    Ok(BinlogFilePosition::new(
        text(&row, 0),
        text(&row, 1).parse().unwrap_or(4),
    ))
}

/// The GTID position at a file position (MariaDB's `BINLOG_GTID_POS`).
pub(crate) async fn mariadb_gtid_at(
    conn: &mut Conn,
    at: &BinlogFilePosition,
) -> Result<GtidSet, SourceError> {
    let sql = format!(
        "SELECT BINLOG_GTID_POS('{}', {})",
        sql_string(&at.file),
        at.pos
    );
    let row = query_row(conn, &sql).await?;
    // NULL means the server cannot place the position (not a boundary, not in its binlogs);
    // "" is a real answer (no GTIDs before it).
    let Some(text) = row
        .as_ref()
        .filter(|r| !matches!(r.as_ref(0), None | Some(mysql_async::Value::NULL)))
        .map(|r| text(r, 0))
    else {
        return Err(refused(
            format!(
                "the source cannot find position {at} in its binlogs (BINLOG_GTID_POS is NULL)"
            ),
            "seek to a position printed by SHOW MASTER STATUS or SHOW BINLOG EVENTS",
        ));
    };
    GtidSet::parse_as(Flavor::MariaDb, &text).map_err(|e| {
        refused(
            format!("{at} is not a transaction boundary the source knows ({e})"),
            "seek to a position printed by SHOW MASTER STATUS or SHOW BINLOG EVENTS",
        )
    })
}

/// Turns a configured start (`earliest`, `latest`, `file:pos`, `gtid:<set>`) into a stream
/// start, refusing files the source has purged.
pub async fn resolve_start(
    conn: &mut Conn,
    facts: &SourceFacts,
    start: &str,
) -> Result<StreamStart, SourceError> {
    let files = binlog_files(conn).await?;
    let at = match start.trim() {
        "earliest" => {
            let first = files
                .first()
                .cloned()
                .ok_or_else(|| refused("the source has no binlog files", "enable log_bin"))?;
            BinlogFilePosition::new(first, 4)
        }
        "latest" => binlog_end(conn).await?,
        other if other.starts_with("gtid:") => {
            let set = GtidSet::parse_as(facts.flavor, &other["gtid:".len()..]).map_err(|e| {
                refused(
                    e.to_string(),
                    "write the start as gtid:<set> in the source's flavor",
                )
            })?;
            check_gtids_available(conn, facts, &set).await?;
            return Ok(StreamStart {
                file: BinlogFilePosition::new("", 4),
                gtids: Some(set),
            });
        }
        other => other.parse::<BinlogFilePosition>().map_err(|e| {
            refused(
                e.to_string(),
                "set source.start to earliest, latest, file:pos or gtid:<set>",
            )
        })?,
    };
    check_file_available(&files, &at)?;
    let gtids = match facts.flavor {
        Flavor::MariaDb => Some(mariadb_gtid_at(conn, &at).await?),
        Flavor::MySql => None,
    };
    Ok(StreamStart { file: at, gtids })
}

/// Refuses a file position in a purged (or never written) binlog file.
pub fn check_file_available(files: &[String], at: &BinlogFilePosition) -> Result<(), SourceError> {
    if files.contains(&at.file) {
        return Ok(());
    }
    let oldest = files.first().cloned().unwrap_or_default();
    Err(refused(
        format!(
            "binlog file {} is not on the source (oldest kept: {oldest}); it was purged or never existed",
            at.file
        ),
        "changes in the purged files are lost to capture: seek to `earliest` (or re-snapshot the \
         tables) and raise binlog retention (expire_logs_days / binlog_expire_logs_seconds)",
    ))
}

/// Refuses a GTID start whose successors have been purged.
pub async fn check_gtids_available(
    conn: &mut Conn,
    facts: &SourceFacts,
    set: &GtidSet,
) -> Result<(), SourceError> {
    let purged = match facts.flavor {
        Flavor::MySql => {
            let row = query_row(conn, "SELECT @@gtid_purged").await?;
            GtidSet::parse_as(Flavor::MySql, &row.map(|r| text(&r, 0)).unwrap_or_default()).ok()
        }
        Flavor::MariaDb => {
            // The GTID position at the start of the oldest file kept.
            let files = binlog_files(conn).await?;
            match files.first() {
                Some(first) => mariadb_gtid_at(conn, &BinlogFilePosition::new(first.clone(), 4))
                    .await
                    .ok(),
                None => None,
            }
        }
    };
    if let Some(purged) = purged
        && !matches!(purged.is_subset_of(set), Ok(true))
    {
        return Err(refused(
            format!(
                "transactions after GTID position {set} are no longer in the source's binlogs \
                 (the oldest kept start after {purged})"
            ),
            "changes in the purged files are lost to capture: seek to `earliest` (or \
             re-snapshot the tables) and raise binlog retention",
        ));
    }
    Ok(())
}

/// Opens the binlog stream at `start`, consuming the connection.
pub async fn open_stream(
    mut conn: Conn,
    facts: &SourceFacts,
    start: &StreamStart,
    our_server_id: u32,
    heartbeat: Duration,
) -> Result<BinlogStream, SourceError> {
    let period_ns = heartbeat.as_nanos().min(u128::from(u64::MAX)) as u64;
    let mut setup = vec![format!("SET @master_heartbeat_period={period_ns}")];
    match facts.flavor {
        Flavor::MariaDb => setup.push("SET @mariadb_slave_capability=4".into()),
        // The name MySQL's binlog sender reads since 8.0.26 (the old one is deprecated).
        Flavor::MySql => setup.push(format!("SET @source_heartbeat_period={period_ns}")),
    }
    let use_gtids = match (&start.gtids, facts.flavor) {
        (Some(set), Flavor::MariaDb) => {
            setup.push(format!("SET @slave_connect_state='{set}'"));
            setup.push("SET @slave_gtid_strict_mode=1".into());
            true
        }
        _ => false,
    };
    for sql in &setup {
        conn.query_drop(sql)
            .await
            .map_err(|source| SourceError::Query {
                query: sql.clone(),
                source,
            })?;
    }
    let mut request = BinlogStreamRequest::new(our_server_id);
    let mysql_sids: Vec<mysql_async::Sid<'static>>;
    if use_gtids {
        // MariaDB: an empty file name makes the server start after @slave_connect_state.
        request = request.with_filename(b"").with_pos(4u64);
    } else if let (Some(GtidSet::MySql(set)), Flavor::MySql) = (&start.gtids, facts.flavor) {
        mysql_sids = set
            .to_string()
            .split(',')
            .filter(|block| !block.trim().is_empty())
            .map(|block| block.trim().parse())
            .collect::<Result<_, _>>()
            .map_err(|e| refused(format!("GTID set {set}: {e}"), "check the stored GTID set"))?;
        request = request.with_gtid().with_gtid_set(mysql_sids);
    } else {
        request = request
            .with_filename(start.file.file.as_bytes())
            .with_pos(start.file.pos);
    }
    conn.get_binlog_stream(request)
        .await
        .map_err(SourceError::Stream)
}

/// Reads a table's definition from information_schema (for sources without FULL row metadata).
pub async fn table_definition(
    conn: &mut Conn,
    table: &TableId,
) -> Result<TableDefinition, SourceError> {
    let sql = format!(
        "SELECT COLUMN_NAME, COLUMN_TYPE, CHARACTER_SET_NAME, COLUMN_KEY \
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA='{}' AND TABLE_NAME='{}' \
         ORDER BY ORDINAL_POSITION",
        sql_string(&table.db),
        sql_string(&table.table)
    );
    let rows = query_rows(conn, &sql).await?;
    let mut columns = Vec::with_capacity(rows.len());
    for row in &rows {
        let column_type = text(row, 1);
        let members = enum_members(&column_type);
        columns.push(ColumnDefinition {
            name: text(row, 0),
            unsigned: column_type.to_ascii_lowercase().contains("unsigned"),
            charset: Some(text(row, 2)).filter(|c| !c.is_empty()),
            members,
        });
    }
    let key_sql = format!(
        "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE \
         WHERE TABLE_SCHEMA='{}' AND TABLE_NAME='{}' AND CONSTRAINT_NAME='PRIMARY' \
         ORDER BY ORDINAL_POSITION",
        sql_string(&table.db),
        sql_string(&table.table)
    );
    let key_rows = query_rows(conn, &key_sql).await?;
    let key: Vec<usize> = key_rows
        .iter()
        .filter_map(|r| {
            let name = text(r, 0);
            columns.iter().position(|c| c.name == name)
        })
        .collect();
    Ok(TableDefinition {
        columns,
        key: if key.is_empty() {
            RowKey::None
        } else {
            RowKey::Primary(key)
        },
    })
}

/// Members of `enum('a','b')` / `set('a','b')` as information_schema writes them.
fn enum_members(column_type: &str) -> Vec<String> {
    match ColumnType::from_sql(column_type) {
        Some(ColumnType::Enum { members } | ColumnType::Set { members }) => members,
        _ => Vec::new(),
    }
}

/// The columns that identify a table's rows: the primary key, else the first UNIQUE key whose
/// columns are all NOT NULL (Debezium's choice), else none. `true` marks a primary key.
pub async fn table_key(
    conn: &mut Conn,
    table: &TableId,
) -> Result<Option<(bool, Vec<String>)>, SourceError> {
    let sql = format!(
        "SELECT s.INDEX_NAME, s.COLUMN_NAME, c.IS_NULLABLE \
         FROM information_schema.STATISTICS s JOIN information_schema.COLUMNS c \
           ON c.TABLE_SCHEMA = s.TABLE_SCHEMA AND c.TABLE_NAME = s.TABLE_NAME \
          AND c.COLUMN_NAME = s.COLUMN_NAME \
         WHERE s.TABLE_SCHEMA = '{}' AND s.TABLE_NAME = '{}' AND s.NON_UNIQUE = 0 \
         ORDER BY s.INDEX_NAME = 'PRIMARY' DESC, s.INDEX_NAME, s.SEQ_IN_INDEX",
        sql_string(&table.db),
        sql_string(&table.table)
    );
    let rows = query_rows(conn, &sql).await?;
    let mut indexes: Vec<(String, Vec<String>, bool)> = Vec::new();
    for row in &rows {
        let (index, column, nullable) = (text(row, 0), text(row, 1), text(row, 2) == "YES");
        match indexes.last_mut() {
            Some((name, columns, any_null)) if *name == index => {
                columns.push(column);
                *any_null |= nullable;
            }
            _ => indexes.push((index, vec![column], nullable)),
        }
    }
    Ok(indexes
        .into_iter()
        .find(|(name, _, any_null)| name == "PRIMARY" || !any_null)
        .map(|(name, columns, _)| (name == "PRIMARY", columns)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_enum_members() {
        assert_eq!(
            enum_members("enum('a','it''s','c,d')"),
            ["a", "it's", "c,d"]
        );
        assert_eq!(enum_members("set('x')"), ["x"]);
        assert!(enum_members("int(11)").is_empty());
    }

    #[test]
    fn purged_files_are_refused_with_the_fix() {
        let files = vec!["bin.000003".to_owned(), "bin.000004".to_owned()];
        let err = check_file_available(&files, &BinlogFilePosition::new("bin.000001", 4))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("bin.000001") && err.contains("bin.000003") && err.contains("earliest"),
            "{err}"
        );
        assert!(check_file_available(&files, &BinlogFilePosition::new("bin.000004", 120)).is_ok());
    }
}
