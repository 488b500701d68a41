//! [`observe`]: what each desired object would become if it were applied now,
//! next to the live object: the live side of drift detection.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Instant;

use futures::{FutureExt as _, StreamExt as _, stream};
use kube::Client;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::calls::{CallError, Calls, Live, LiveSet, Resolved};
use super::manifest::{self, Manifest};
use super::order::{apply_order, sync_order};
use super::resolve::resolve_all;
use super::{InventoryEntry, ObjectKey, SyncError, SyncOptions};

/// Beyond this many objects of one kind to read whole after a metadata list,
/// the kind is listed again, whole, instead of one GET per object.
const GETS_BEFORE_LIST: usize = 16;

/// The annotation where client-side `kubectl apply` keeps the whole object:
/// for a Secret, its data.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// One desired object as [`observe`] found it.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The object's identity (cluster-scoped objects without a namespace).
    pub key: ObjectKey,
    /// The `apiVersion` of the desired manifest.
    pub api_version: String,
    /// SHA-256 of the desired manifest, as in [`InventoryEntry::manifest_sha256`].
    pub manifest_sha256: String,
    /// `metadata.resourceVersion` of the live object; `None` when it is not on
    /// the cluster (or its kind could not be read).
    pub live_resource_version: Option<String>,
    /// What was found.
    pub state: Observed,
}

impl Observation {
    /// What to pass to the next [`observe`] as `previous`, once the caller has
    /// compared this observation; `None` when it failed (there is no result to
    /// reuse).
    pub fn to_previous(&self) -> Option<PreviousObservation> {
        match self.state {
            Observed::Failed { .. } => None,
            Observed::Fresh { .. } | Observed::Reused => Some(PreviousObservation {
                key: self.key.clone(),
                manifest_sha256: self.manifest_sha256.clone(),
                live_resource_version: self.live_resource_version.clone(),
            }),
        }
    }
}

/// What [`observe`] found for one desired object. Its `Debug` output hides the
/// data of Secrets.
#[derive(Clone, PartialEq)]
pub enum Observed {
    /// Read afresh.
    Fresh {
        /// The object the dry-run apply returned: what the object would be if
        /// Pilothouse applied it now (what it would be created as, when it is
        /// missing), with the API server's defaults, admission mutations and
        /// the fields other managers own.
        would_be: Value,
        /// The live object; `None` when it is not on the cluster.
        live: Option<Value>,
    },
    /// The manifest hash and the live `resourceVersion` are those of the
    /// previous observation: nothing changed on either side, nothing was
    /// fetched, and the caller keeps its last result.
    Reused,
    /// The object could not be observed: the API server rejected the dry-run,
    /// the cluster does not serve its kind, its kind could not be listed, ….
    Failed {
        /// Why, in the API server's words when it answered.
        message: String,
    },
}

impl fmt::Debug for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fresh { would_be, live } => f
                .debug_struct("Fresh")
                .field("would_be", &Shown(would_be))
                .field("live", &live.as_ref().map(Shown))
                .finish(),
            Self::Reused => f.write_str("Reused"),
            Self::Failed { message } => f.debug_struct("Failed").field("message", message).finish(),
        }
    }
}

/// An object of the inventory that is no longer desired, as [`observe`] found
/// it. Its `Debug` output hides the data of Secrets.
#[derive(Clone, PartialEq)]
pub struct ExtraObservation {
    /// The object's identity.
    pub key: ObjectKey,
    /// The `apiVersion` it was read at (the inventory's).
    pub api_version: String,
    /// The live object, `Ok(None)` when it is gone (or the cluster no longer
    /// serves its kind), `Err` with the reason when that cannot be told. The
    /// live object may be a namesake someone else created: compare its
    /// `metadata.uid` with [`InventoryEntry::uid`].
    pub live: Result<Option<Value>, String>,
}

impl fmt::Debug for ExtraObservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let live = self.live.as_ref().map(|live| live.as_ref().map(Shown));
        f.debug_struct("ExtraObservation")
            .field("key", &self.key)
            .field("api_version", &self.api_version)
            .field("live", &live)
            .finish()
    }
}

/// What the caller kept of an earlier [`Observation`] (see
/// [`Observation::to_previous`]), so that [`observe`] can skip what did not
/// change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousObservation {
    /// The object's identity.
    pub key: ObjectKey,
    /// [`Observation::manifest_sha256`].
    pub manifest_sha256: String,
    /// [`Observation::live_resource_version`].
    pub live_resource_version: Option<String>,
}

/// Observes the desired objects of a cluster for drift detection: for each,
/// what it would become if Pilothouse applied it now and what it is live; for
/// each object of `extra` (inventory objects no longer desired), whether it is
/// still there. Nothing on the cluster changes.
///
/// **Would-be.** A dry-run (`dryRun=All`) of exactly the apply [`sync`]
/// makes: server-side apply under [`SyncOptions::field_manager`] with force.
/// The API server defaults the object, runs admission and merges the fields
/// other managers own, and stores nothing. So defaults and others' fields
/// appear on both sides, and what differs between the would-be and the live
/// object is what a sync would change. An object in a namespace that does not
/// exist fails with the API server's "not found".
///
/// **Reuse.** One metadata list per kind (and namespace, as in [`sync`])
/// gives each object's live `resourceVersion`. An object whose manifest hash
/// and live `resourceVersion` are those of its `previous` entry is
/// [`Observed::Reused`]: neither the desired nor the live object changed, so
/// nothing more is fetched. Every other object gets its dry-run and a read of
/// the live object. A missing object is never reused; with
/// [`SyncOptions::force_apply`] nothing is.
///
/// **Reads.** A kind none of whose objects can be reused (a first
/// observation, a changed manifest) is listed whole at once, so its objects
/// need no GET; otherwise the objects to read are fetched one GET each, or by
/// listing the kind again when there are more than a few. Secrets are never
/// listed whole: only those that are read afresh are fetched, one GET each,
/// so no other Secret of the namespace is read. When the dry-run shows that
/// the object changed since it was read, it is read once more.
///
/// **Calls.** At most [`SyncOptions::concurrency`] objects at once, every
/// call bounded by [`SyncOptions::call_timeout`]. When the cluster does not
/// answer, the result is [`SyncError::Unreachable`] (unknown, never in sync);
/// what happens to single objects is [`Observed::Failed`].
///
/// **Order.** Observations in the order [`sync`] applies the objects;
/// `extra` in the order it prunes them.
///
/// [`sync`]: super::sync()
///
/// ```no_run
/// # async fn example(client: kube::Client, desired: Vec<serde_json::Value>,
/// #     inventory: Vec<pilothouse_fleet::InventoryEntry>)
/// # -> Result<(), pilothouse_fleet::SyncError> {
/// use pilothouse_fleet::{Observed, SyncOptions, observe};
/// let options = SyncOptions::default();
/// let (observed, extra) = observe(&client, desired.clone(), &[], &[], &options).await?;
/// // compare would_be with live for each; keep what to reuse next time
/// let previous: Vec<_> = observed.iter().filter_map(|o| o.to_previous()).collect();
/// let (again, _) = observe(&client, desired, &[], &previous, &options).await?;
/// for observation in &again {
///     if let Observed::Fresh { would_be, live } = &observation.state {
///         // compare afresh; `Reused`: keep the last result
///     }
/// }
/// # Ok(()) }
/// ```
pub async fn observe(
    client: &Client,
    desired: Vec<Value>,
    extra: &[InventoryEntry],
    previous: &[PreviousObservation],
    options: &SyncOptions,
) -> Result<(Vec<Observation>, Vec<ExtraObservation>), SyncError> {
    let began = Instant::now();
    let manifests = manifest::parse_all(desired)?;
    let calls = Calls::new(client, options);
    calls
        .discover(
            manifests
                .iter()
                .map(|m| m.api_version.clone())
                .chain(extra.iter().map(|e| e.api_version.clone())),
        )
        .await;
    let mut planned = resolve_all(&calls, manifests);
    planned.sort_by(|a, b| sync_order(&a.0.key).cmp(&sync_order(&b.0.key)));
    let mut extra: Vec<(&InventoryEntry, Result<Resolved, CallError>)> = extra
        .iter()
        .map(|entry| (entry, calls.resolve(&entry.api_version, &entry.key.kind)))
        .collect();
    extra.sort_by(|a, b| apply_order(&b.0.key).cmp(&apply_order(&a.0.key)));

    let before: HashMap<&ObjectKey, &PreviousObservation> =
        previous.iter().map(|p| (&p.key, p)).collect();
    let reusable_at = |manifest: &Manifest| -> Option<&str> {
        if options.force_apply {
            return None;
        }
        before
            .get(&manifest.key)
            .filter(|p| p.manifest_sha256 == manifest.sha256)
            .and_then(|p| p.live_resource_version.as_deref())
    };
    // kinds with objects that may be reused are listed by metadata; the others
    // are read whole anyway
    let thin: HashSet<KindId> = planned
        .iter()
        .filter(|(manifest, _)| reusable_at(manifest).is_some())
        .filter_map(|(_, kind)| kind.as_ref().ok().map(kind_id))
        .collect();
    let listed_whole = |kind: &Resolved| !is_secret(kind) && !thin.contains(&kind_id(kind));
    let live = calls
        .read_lists(
            planned
                .iter()
                .filter_map(|(m, kind)| Some((kind.as_ref().ok()?, m.key.namespace.as_deref())))
                .chain(extra.iter().filter_map(|(entry, kind)| {
                    Some((kind.as_ref().ok()?, entry.key.namespace.as_deref()))
                })),
            listed_whole,
        )
        .await;

    let mut steps: Vec<Step> = planned
        .into_iter()
        .map(|(manifest, kind)| {
            let reusable = reusable_at(&manifest).map(str::to_owned);
            Step::new(manifest, kind, &live, listed_whole, reusable.as_deref())
        })
        .collect();
    let mut extra_steps: Vec<ExtraStep> = extra
        .into_iter()
        .map(|(entry, kind)| ExtraStep::new(entry, kind, &live, listed_whole))
        .collect();
    read_many(&calls, &mut steps, &mut extra_steps).await;

    // futures made before the stream: see `apply_all`
    let observing: Vec<_> = steps
        .into_iter()
        .map(|step| observe_one(&calls, step).boxed())
        .collect();
    let observations: Vec<Observation> = stream::iter(observing)
        .buffered(calls.concurrency())
        .collect()
        .await;
    let reading: Vec<_> = extra_steps
        .into_iter()
        .map(|step| read_extra(&calls, step).boxed())
        .collect();
    let extras: Vec<ExtraObservation> = stream::iter(reading)
        .buffered(calls.concurrency())
        .collect()
        .await;
    if let Some(reason) = calls.stopped() {
        return Err(SyncError::Unreachable { message: reason });
    }
    let count = |f: fn(&Observed) -> bool| observations.iter().filter(|o| f(&o.state)).count();
    tracing::debug!(
        objects = observations.len(),
        fresh = count(|s| matches!(s, Observed::Fresh { .. })),
        reused = count(|s| matches!(s, Observed::Reused)),
        failed = count(|s| matches!(s, Observed::Failed { .. })),
        extra = extras.len(),
        elapsed_ms = began.elapsed().as_millis() as u64,
        "observation finished"
    );
    Ok((observations, extras))
}

/// A kind as lists are made: `(apiVersion, plural)`.
type KindId = (String, String);

fn kind_id(kind: &Resolved) -> KindId {
    (
        kind.resource.api_version.clone(),
        kind.resource.plural.clone(),
    )
}

fn is_secret(kind: &Resolved) -> bool {
    kind.resource.group.is_empty() && kind.resource.kind == "Secret"
}

/// What is known of a live object after the lists.
enum Known {
    /// Not on the cluster.
    Missing,
    /// The whole object, from a list.
    Whole(Value),
    /// There, but only its metadata was listed: to be read.
    Unread,
}

impl Known {
    /// From the lists: `Err` with the reason when the kind could not be listed.
    fn from_lists(
        live: &LiveSet,
        kind: &Resolved,
        namespace: Option<&str>,
        name: &str,
        listed_whole: impl Fn(&Resolved) -> bool,
    ) -> Result<(Self, Option<String>), String> {
        match live.get(kind, namespace, name) {
            Err(error) => Err(format!("cannot list the live objects: {}", error.message())),
            Ok(None) => Ok((Self::Missing, None)),
            Ok(Some(found)) => {
                let known = if listed_whole(kind) {
                    Self::Whole(found.object.clone())
                } else {
                    Self::Unread
                };
                Ok((known, Some(found.resource_version.clone())))
            }
        }
    }
}

/// One desired object between the lists and its observation.
enum Step {
    /// Observed without further calls (reused, or failed already).
    Done(Observation),
    /// To dry-run, and to read if it is [`Known::Unread`].
    Pending {
        manifest: Manifest,
        kind: Resolved,
        resource_version: Option<String>,
        live: Known,
    },
}

impl Step {
    fn new(
        manifest: Manifest,
        kind: Result<Resolved, String>,
        live: &LiveSet,
        listed_whole: impl Fn(&Resolved) -> bool,
        reusable_at: Option<&str>,
    ) -> Self {
        let observation = |manifest: Manifest, resource_version, state| Observation {
            key: manifest.key,
            api_version: manifest.api_version,
            manifest_sha256: manifest.sha256,
            live_resource_version: resource_version,
            state,
        };
        let kind = match kind {
            Ok(kind) => kind,
            Err(message) => {
                return Self::Done(observation(manifest, None, Observed::Failed { message }));
            }
        };
        let name = &manifest.key.name;
        match Known::from_lists(
            live,
            &kind,
            manifest.key.namespace.as_deref(),
            name,
            listed_whole,
        ) {
            Err(message) => Self::Done(observation(manifest, None, Observed::Failed { message })),
            Ok((_, Some(version))) if reusable_at == Some(version.as_str()) => {
                Self::Done(observation(manifest, Some(version), Observed::Reused))
            }
            Ok((live, resource_version)) => Self::Pending {
                manifest,
                kind,
                resource_version,
                live,
            },
        }
    }
}

/// One object of `extra` between the lists and its observation.
enum ExtraStep {
    /// Known from the lists (or failed).
    Done(ExtraObservation),
    /// There, to be read.
    Unread {
        entry: InventoryEntry,
        kind: Resolved,
    },
}

impl ExtraStep {
    fn new(
        entry: &InventoryEntry,
        kind: Result<Resolved, CallError>,
        live: &LiveSet,
        listed_whole: impl Fn(&Resolved) -> bool,
    ) -> Self {
        let done = |live| {
            Self::Done(ExtraObservation {
                key: entry.key.clone(),
                api_version: entry.api_version.clone(),
                live,
            })
        };
        let kind = match kind {
            Ok(kind) => kind,
            Err(CallError::NotServed(_)) => return done(Ok(None)),
            Err(error) => return done(Err(error.message())),
        };
        let namespace = entry.key.namespace.as_deref();
        match Known::from_lists(live, &kind, namespace, &entry.key.name, listed_whole) {
            Err(message) => done(Err(message)),
            Ok((Known::Missing, _)) => done(Ok(None)),
            Ok((Known::Whole(object), _)) => done(Ok(Some(object))),
            Ok((Known::Unread, _)) => Self::Unread {
                entry: entry.clone(),
                kind,
            },
        }
    }
}

/// Reads the objects still unread of kinds with many of them by listing those
/// kinds again, whole (never Secrets): cheaper than a GET each.
async fn read_many(calls: &Calls<'_>, steps: &mut [Step], extra: &mut [ExtraStep]) {
    let mut unread: HashMap<KindId, usize> = HashMap::new();
    let mut note = |kind: &Resolved| {
        if !is_secret(kind) {
            *unread.entry(kind_id(kind)).or_default() += 1;
        }
    };
    for step in steps.iter() {
        if let Step::Pending {
            kind,
            live: Known::Unread,
            ..
        } = step
        {
            note(kind);
        }
    }
    for step in extra.iter() {
        if let ExtraStep::Unread { kind, .. } = step {
            note(kind);
        }
    }
    let many: HashSet<KindId> = unread
        .into_iter()
        .filter(|(_, count)| *count > GETS_BEFORE_LIST)
        .map(|(kind, _)| kind)
        .collect();
    if many.is_empty() {
        return;
    }
    let wanted = steps
        .iter()
        .filter_map(|step| match step {
            Step::Pending {
                manifest,
                kind,
                live: Known::Unread,
                ..
            } => Some((kind, manifest.key.namespace.as_deref())),
            _ => None,
        })
        .chain(extra.iter().filter_map(|step| match step {
            ExtraStep::Unread { entry, kind } => Some((kind, entry.key.namespace.as_deref())),
            ExtraStep::Done(_) => None,
        }))
        .filter(|(kind, _)| many.contains(&kind_id(kind)));
    let listed = calls.read_lists(wanted, |_| true).await;
    let whole = |kind: &Resolved| many.contains(&kind_id(kind));
    for step in steps.iter_mut() {
        if let Step::Pending {
            manifest,
            kind,
            resource_version,
            live: live @ Known::Unread,
        } = step
            && whole(kind)
            && let Ok((known, version)) = Known::from_lists(
                &listed,
                kind,
                manifest.key.namespace.as_deref(),
                &manifest.key.name,
                |_| true,
            )
        {
            *live = known;
            *resource_version = version;
        }
    }
    for step in extra.iter_mut() {
        if let ExtraStep::Unread { entry, kind } = step
            && whole(kind)
            && let Ok((known, _)) = Known::from_lists(
                &listed,
                kind,
                entry.key.namespace.as_deref(),
                &entry.key.name,
                |_| true,
            )
        {
            let live = match known {
                Known::Missing => None,
                Known::Whole(object) => Some(object),
                Known::Unread => continue,
            };
            *step = ExtraStep::Done(ExtraObservation {
                key: entry.key.clone(),
                api_version: entry.api_version.clone(),
                live: Ok(live),
            });
        }
    }
}

/// Reads one live object whole: `None` when it is gone.
async fn read(
    calls: &Calls<'_>,
    kind: &Resolved,
    namespace: Option<&str>,
    name: &str,
) -> Result<Option<Value>, CallError> {
    let object = calls.get(kind, namespace, name).await?;
    Ok(object.map(|object| Live::from_object(object, &kind.resource).object))
}

fn version_of(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|version| !version.is_empty())
}

/// Reads the object if it is unread, then dry-runs its apply; reads it again
/// when the dry-run was made on a later version than the one read.
async fn observe_one(calls: &Calls<'_>, step: Step) -> Observation {
    let (manifest, kind, resource_version, known) = match step {
        Step::Done(observation) => return observation,
        Step::Pending {
            manifest,
            kind,
            resource_version,
            live,
        } => (manifest, kind, resource_version, live),
    };
    let namespace = manifest.key.namespace.as_deref();
    let name = &manifest.key.name;
    let observation = |live_resource_version, state| Observation {
        key: manifest.key.clone(),
        api_version: manifest.api_version.clone(),
        manifest_sha256: manifest.sha256.clone(),
        live_resource_version,
        state,
    };
    let failed = |message: String| observation(None, Observed::Failed { message });
    let mut live = match known {
        Known::Missing => None,
        Known::Whole(object) => Some(object),
        Known::Unread => match read(calls, &kind, namespace, name).await {
            Ok(live) => live,
            Err(error) => {
                return failed(format!("cannot read the live object: {}", error.message()));
            }
        },
    };
    let would_be = match calls
        .dry_run_apply(&kind, namespace, name, &manifest.body)
        .await
    {
        Ok(object) => Live::from_object(object, &kind.resource).object,
        Err(error) => {
            let version = live.as_ref().and_then(version_of).map(str::to_owned);
            return observation(
                version.or(resource_version),
                Observed::Failed {
                    message: error.message(),
                },
            );
        }
    };
    // the dry-run starts from the current object: a version other than the one
    // read means the object changed (or appeared) in between
    if version_of(&would_be) != live.as_ref().and_then(version_of) {
        match read(calls, &kind, namespace, name).await {
            Ok(again) => live = again,
            Err(error) => {
                return failed(format!("cannot read the live object: {}", error.message()));
            }
        }
    }
    let version = live.as_ref().and_then(version_of).map(str::to_owned);
    observation(version, Observed::Fresh { would_be, live })
}

/// Reads one object of `extra` that the lists showed only by its metadata.
async fn read_extra(calls: &Calls<'_>, step: ExtraStep) -> ExtraObservation {
    let (entry, kind) = match step {
        ExtraStep::Done(observation) => return observation,
        ExtraStep::Unread { entry, kind } => (entry, kind),
    };
    let live = read(
        calls,
        &kind,
        entry.key.namespace.as_deref(),
        &entry.key.name,
    )
    .await
    .map_err(|error| format!("cannot read the live object: {}", error.message()));
    ExtraObservation {
        key: entry.key,
        api_version: entry.api_version,
        live,
    }
}

/// An object in `Debug` output, with the data of a Secret hidden.
struct Shown<'a>(&'a Value);

impl fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&redacted(self.0), f)
    }
}

/// The object, or for a Secret a copy whose data values (and client-side
/// apply's copy of the object) read `<redacted>`.
fn redacted(object: &Value) -> Cow<'_, Value> {
    if object.get("kind").and_then(Value::as_str) != Some("Secret") {
        return Cow::Borrowed(object);
    }
    let mut copy = object.clone();
    for field in ["data", "stringData"] {
        if let Some(values) = copy.get_mut(field).and_then(Value::as_object_mut) {
            values
                .values_mut()
                .for_each(|value| *value = "<redacted>".into());
        }
    }
    if let Some(copied) = copy
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
        .and_then(|annotations| annotations.get_mut(LAST_APPLIED))
    {
        *copied = "<redacted>".into();
    }
    Cow::Owned(copy)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn debug_output_hides_the_data_of_secrets() {
        let secret = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "annotations": {LAST_APPLIED: "{\"data\":{\"k\":\"c2VjcmV0\"}}", "a": "b"}},
            "data": {"k": "c2VjcmV0"}, "stringData": {"p": "secret"}});
        let observed = Observed::Fresh {
            would_be: secret.clone(),
            live: Some(secret.clone()),
        };
        let extra = ExtraObservation {
            key: ObjectKey {
                group: String::new(),
                kind: "Secret".into(),
                namespace: Some("n".into()),
                name: "s".into(),
            },
            api_version: "v1".into(),
            live: Ok(Some(secret)),
        };
        for shown in [format!("{observed:?}"), format!("{extra:?}")] {
            assert!(!shown.contains("c2VjcmV0"), "{shown}");
            assert!(!shown.contains("secret\""), "{shown}");
            assert!(shown.contains("<redacted>") && shown.contains("\"a\": String(\"b\")"));
        }
        let config = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "visible"}});
        assert!(format!("{:?}", Shown(&config)).contains("visible"));
    }

    #[test]
    fn failed_observations_leave_nothing_to_reuse() {
        let observation = |state| Observation {
            key: ObjectKey {
                group: String::new(),
                kind: "ConfigMap".into(),
                namespace: Some("n".into()),
                name: "c".into(),
            },
            api_version: "v1".into(),
            manifest_sha256: "ab".into(),
            live_resource_version: Some("7".into()),
            state,
        };
        let previous = observation(Observed::Reused).to_previous();
        assert_eq!(
            previous.map(|p| (p.manifest_sha256, p.live_resource_version)),
            Some(("ab".to_owned(), Some("7".to_owned())))
        );
        let failed = observation(Observed::Failed {
            message: "no".into(),
        });
        assert_eq!(failed.to_previous(), None);
    }
}
