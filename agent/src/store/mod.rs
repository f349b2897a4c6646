//! The sled store: outbox of data messages keyed by seq, durable seq counter, audit aggregates (own trees).

use std::path::Path;

use anyhow::Context;

/// sled's page cache bound: small, so memory stays flat whatever the backlog.
pub const CACHE_CAPACITY: u64 = 4 * 1024 * 1024;

/// Open (or create) the sled database in `dir`.
pub fn open_db(dir: &Path) -> anyhow::Result<sled::Db> {
    sled::Config::new()
        .path(dir)
        .cache_capacity(CACHE_CAPACITY)
        .open()
        .with_context(|| format!("cannot open the store at {}", dir.display()))
}
