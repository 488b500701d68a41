//! [`assess_health`]: the health of an inventory's objects, read again.

use kube::Client;

use super::calls::{CallError, Calls};
use super::object_health::{HealthContext, object_health};
use super::{Health, InventoryEntry, ObjectHealth, SyncError, SyncOptions};

/// Reads the live objects of an inventory again and judges their health with
/// [`object_health`](super::object_health()): what the caller does periodically
/// after a sync until everything is healthy.
///
/// Objects are read with one list per kind and namespace (whole objects only
/// for kinds judged by their status, metadata for the rest), not a GET each,
/// and StorageClasses are listed when there are claims. An object that is gone,
/// or whose kind the cluster no longer serves, is `Missing`; one whose kind
/// cannot be read is `Unknown`. Every call is bounded by
/// [`SyncOptions::call_timeout`], at most [`SyncOptions::concurrency`] at once;
/// when the cluster does not answer, the result is
/// [`SyncError::Unreachable`].
///
/// ```no_run
/// # async fn example(client: kube::Client, inventory: Vec<pilothouse_fleet::InventoryEntry>)
/// # -> Result<(), pilothouse_fleet::SyncError> {
/// use pilothouse_fleet::{Health, SyncOptions, assess_health};
/// let healths = assess_health(&client, &inventory, &SyncOptions::default()).await?;
/// let overall = Health::worst(healths.iter().map(|h| h.health));
/// # Ok(()) }
/// ```
pub async fn assess_health(
    client: &Client,
    inventory: &[InventoryEntry],
    options: &SyncOptions,
) -> Result<Vec<ObjectHealth>, SyncError> {
    let calls = Calls::new(client, options);
    calls
        .discover(inventory.iter().map(|entry| entry.api_version.clone()))
        .await;
    let kinds: Vec<_> = inventory
        .iter()
        .map(|entry| calls.resolve(&entry.api_version, &entry.key.kind))
        .collect();
    let live = calls
        .read_live(inventory.iter().zip(&kinds).filter_map(|(entry, kind)| {
            Some((kind.as_ref().ok()?, entry.key.namespace.as_deref()))
        }))
        .await;
    let context = if inventory
        .iter()
        .any(|entry| entry.key.group.is_empty() && entry.key.kind == "PersistentVolumeClaim")
    {
        calls.health_context().await
    } else {
        HealthContext::default()
    };
    if let Some(reason) = calls.stopped() {
        return Err(SyncError::Unreachable { message: reason });
    }
    let healths = inventory
        .iter()
        .zip(kinds)
        .map(|(entry, kind)| {
            let (health, message) = match kind {
                Err(CallError::NotServed(why)) => (Health::Missing, Some(why)),
                Err(error) => (Health::Unknown, Some(error.message())),
                Ok(kind) => {
                    match live.get(&kind, entry.key.namespace.as_deref(), &entry.key.name) {
                        Ok(Some(object)) => object_health(&object.object, &context),
                        Ok(None) => (Health::Missing, None),
                        Err(error) => (
                            Health::Unknown,
                            Some(format!("cannot list it: {}", error.message())),
                        ),
                    }
                }
            };
            ObjectHealth {
                key: entry.key.clone(),
                api_version: entry.api_version.clone(),
                health,
                message,
            }
        })
        .collect();
    Ok(healths)
}
