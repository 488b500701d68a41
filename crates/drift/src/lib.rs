//! Drift detection: what the cluster has against what Git wants.
//!
//! This crate owns the comparison of one object as applying it would leave
//! it (the caller obtains this "would-be" object with a server-side-apply
//! dry-run under the field manager [`FIELD_MANAGER`], so API-server
//! defaults, admission mutations and fields other managers own are already
//! in it) with the live object, and the findings: a [`DriftState`] per
//! object, every differing field as a [`FieldDiff`], a [`DriftSummary`] over
//! many objects, and a readable [`unified_diff`].
//!
//! Rules of the comparison:
//! - Never drift: `status`, `metadata.managedFields`, `resourceVersion`,
//!   `generation`, `uid`, `creationTimestamp`, `deletionTimestamp`,
//!   `deletionGracePeriodSeconds`, `selfLink`, and the
//!   `kubectl.kubernetes.io/last-applied-configuration` annotation.
//! - Objects are compared key by key, in sorted key order. Lists whose
//!   elements all carry a unique `name` (containers, env, volumes …), or a
//!   well-known merge key of that list (`containerPort` or `port` for
//!   `ports`, `mountPath` for `volumeMounts`, `devicePath` for
//!   `volumeDevices`, `ip` for `hostAliases`, `type` for `conditions`), are
//!   matched element by element on that key, so reordering is not drift;
//!   paths carry the element's index in the would-be list (the live list's
//!   for an element only the live object has). Other lists are compared
//!   index by index.
//! - Differences are reported at the deepest level; a value present on one
//!   side only is one difference at its root. `null` is the same as absent;
//!   numbers compare by value (`1` equals `1.0`).
//! - The values of a core Secret's `data` and `stringData` never leave the
//!   crate: paths are shown, values replaced by [`SECRET_MASK_BEFORE`]
//!   (live) and [`SECRET_MASK_AFTER`] (desired), or [`SECRET_MASK`] where
//!   equal in the unified diff. A changed value is still drift.
//! - [`IgnoreRule`]s drop differences by JSON pointer or by the field
//!   manager that owns the field in the live object (see [`Ignore`]).
//!
//! The crate is pure: values in, values out. It must not do I/O, talk to a
//! cluster, read a clock or the environment, or log; findings are data in
//! the result. Output is deterministic for the same input.
//!
//! ```no_run
//! use pilothouse_drift::{DriftState, compare, unified_diff};
//! # let (would_be, live) = (serde_json::Value::Null, serde_json::Value::Null);
//! let drift = compare(&would_be, &live, &[]);
//! if drift.state == DriftState::Modified {
//!     for diff in &drift.diffs {
//!         println!("{}: {:?} -> {:?}", diff.path, diff.live, diff.desired);
//!     }
//!     print!("{}", unified_diff(&would_be, &live));
//! }
//! ```

mod compare;
mod error;
mod managed;
mod object;
mod pointer;
mod rules;
mod state;
mod text;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::error::DriftError;
pub use crate::object::ObjectRef;
pub use crate::rules::{Ignore, IgnoreRule, Target};
pub use crate::state::{DriftState, DriftSummary, summarize};

/// The field manager Pilothouse applies with; fields it owns are never
/// ignored by [`Ignore::ManagedBy`].
pub const FIELD_MANAGER: &str = "pilothouse";

/// Shown in the unified diff for a Secret value equal on both sides.
pub const SECRET_MASK: &str = "(secret)";
/// Shown for a live Secret value that differs from the desired one.
pub const SECRET_MASK_BEFORE: &str = "(secret, before)";
/// Shown for a desired Secret value that differs from the live one.
pub const SECRET_MASK_AFTER: &str = "(secret, after)";

/// One differing field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldDiff {
    /// Where, as a JSON pointer (RFC 6901: `~` is `~0`, `/` is `~1`), e.g.
    /// `/spec/template/spec/containers/0/image`.
    pub path: String,
    /// The live value; `None` when the live object does not have the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<Value>,
    /// The would-be (desired) value; `None` when it does not have the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired: Option<Value>,
}

/// The finding for one object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectDrift {
    /// The object.
    pub object: ObjectRef,
    /// Where it stands.
    pub state: DriftState,
    /// The differing fields, in the order of the walk (empty unless
    /// [`DriftState::Modified`]).
    pub diffs: Vec<FieldDiff>,
    /// Why the state is [`DriftState::Unknown`] (set by the caller: the
    /// refused dry-run, the unreachable cluster …); `None` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Compares what applying the desired object would leave (`would_be`, from
/// a server-side-apply dry-run) with the `live` object: [`DriftState::InSync`]
/// or [`DriftState::Modified`] with the differing fields. The object is
/// named after `would_be`; rules whose target does not match it are
/// skipped.
pub fn compare(would_be: &Value, live: &Value, rules: &[IgnoreRule]) -> ObjectDrift {
    let diffs = compare::diff(would_be, live, rules);
    ObjectDrift {
        object: ObjectRef::of(would_be),
        state: if diffs.is_empty() {
            DriftState::InSync
        } else {
            DriftState::Modified
        },
        diffs,
        message: None,
    }
}

/// The finding for a desired object the cluster does not have.
pub fn missing(desired: &Value) -> ObjectDrift {
    ObjectDrift {
        object: ObjectRef::of(desired),
        state: DriftState::Missing,
        diffs: Vec::new(),
        message: None,
    }
}

/// The finding for an object Pilothouse applied before that Git no longer
/// has (the caller tells which, from its inventory).
pub fn extra(object: ObjectRef) -> ObjectDrift {
    ObjectDrift {
        object,
        state: DriftState::Extra,
        diffs: Vec::new(),
        message: None,
    }
}

/// The finding for an object that could not be compared; the caller puts
/// the reason in [`ObjectDrift::message`].
pub fn unknown(object: ObjectRef) -> ObjectDrift {
    ObjectDrift {
        object,
        state: DriftState::Unknown,
        diffs: Vec::new(),
        message: None,
    }
}

/// A unified diff of the live object (`---`) against the would-be one
/// (`+++`), both written as YAML with sorted keys, without the never-drift
/// fields and with Secret values masked, like `kubectl diff`. Headers name
/// the object: `--- live/apps/v1/Deployment/shop/web`,
/// `+++ desired/apps/v1/Deployment/shop/web`. Empty when the texts are
/// equal. A `Null` side is an empty text (a missing object shows as all
/// added). Ignore rules do not apply here.
pub fn unified_diff(would_be: &Value, live: &Value) -> String {
    text::unified_diff(would_be, live)
}
