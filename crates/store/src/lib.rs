//! Pilothouse's persistent state in SQLite: registered clusters with their
//! encrypted credentials, API tokens, and (as the product grows) revisions,
//! syncs, drift reports, incidents and their notifications.
//!
//! Only this crate writes SQL. It never talks to a cluster or to the network.
//!
//! Secrets at rest are sealed with a [`MasterKey`] that lives in a file or
//! the environment, never in the database; the store only ever holds
//! [`SealedSecret`]s and returns them only through
//! [`Store::cluster_credentials`] (and opened, for the delivery worker,
//! through [`Store::receiver_config`]). API token secrets are stored as
//! SHA-256 hashes. Neither secrets nor keys appear in `Debug` output or errors.
//!
//! ```no_run
//! # async fn example() -> Result<(), pilothouse_store::StoreError> {
//! use std::path::Path;
//!
//! use pilothouse_store::{MasterKey, Store, cluster_credentials_context};
//!
//! let key = MasterKey::load_or_create(Path::new("/var/lib/pilothouse/master.key"), None)?;
//! let store = Store::open(Path::new("/var/lib/pilothouse/pilothouse.db")).await?;
//! if let Some(sealed) = store.cluster_credentials("prod-eu").await? {
//!     let kubeconfig = key.open(&sealed, &cluster_credentials_context("prod-eu"))?;
//!     # let _ = kubeconfig;
//! }
//! store.close().await;
//! # Ok(())
//! # }
//! ```
//!
//! The schema lives in the workspace's `migrations/` folder and is embedded
//! at compile time; [`Store::open`] applies it.

mod clusters;
mod crypto;
mod decode;
mod drift;
mod error;
#[cfg(test)]
mod fixture;
mod incidents;
mod notifications;
mod repository;
mod store;
mod syncs;
mod text_enum;
mod tokens;

// the shared vocabulary, re-exported so callers name it through the store too
pub use clusters::{
    CheckRecord, CloudSource, Cluster, ClusterPage, ClusterQuery, ClusterUpdate, NewCluster,
    Reachability, cluster_credentials_context,
};
pub use crypto::{MASTER_KEY_ENV, MasterKey, SealedSecret};
pub use drift::{
    ClusterDrift, DriftCounts, DriftEpisode, DriftObjectRecord, DriftReport, DriftState,
    FieldDiffRecord, IgnoreRuleRecord, NewDriftReport, ScanStatus, ScanTrigger,
};
pub use error::StoreError;
pub use incidents::{IncidentQuery, IncidentRecord};
pub use notifications::{
    NotificationGroup, OutboxRecord, OutboxWrite, ReceiverKind, ReceiverRecord, ReceiverWrite,
    RouteRecord, RouteWrite, SilenceRecord, SilenceWrite, receiver_config_context,
};
pub use pilothouse_types::{
    Cloud, Health, IncidentStatus, IncidentWrite, ObjectAction, Severity, UnknownCloud,
};
pub use repository::{
    CredentialsKind, REPOSITORY_CREDENTIALS_CONTEXT, Repository, RepositoryEvent,
    RepositoryEventKind, RepositorySettings, RevisionRecord, SecretChange, WEBHOOK_SECRET_CONTEXT,
    repository_credentials_context,
};
pub use store::Store;
pub use syncs::{
    ClusterSync, ClusterSyncStatus, InventoryRecord, SyncCounts, SyncMode, SyncObjectRecord,
    SyncQuery, SyncRecord, SyncResult, SyncStatus, SyncTrigger,
};
pub use tokens::{ApiToken, Scope, TOKEN_PREFIX, UnknownScope};
