//! The schema: versioned migrations in `migrations/` (refinery), applied at start under
//! an advisory lock so two processors starting together do not race; applying them again
//! does nothing.

use tokio_postgres::Client;

use crate::error::PgError;

refinery::embed_migrations!("migrations");

/// Key of the advisory lock held while migrating ("telltale" in ASCII).
const MIGRATION_LOCK: i64 = 0x7465_6c6c_7461_6c65;

/// Creates or migrates telltale's tables and views; the migrations applied now (none
/// when the schema was current).
pub async fn migrate(client: &mut Client) -> Result<Vec<String>, PgError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|source| PgError::Query {
            what: "taking the migration lock".to_owned(),
            source,
        })?;
    let report = migrations::runner().run_async(client).await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    let report = report.map_err(PgError::Migrate)?;
    unlocked.map_err(|source| PgError::Query {
        what: "releasing the migration lock".to_owned(),
        source,
    })?;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|m| m.to_string())
        .collect())
}
