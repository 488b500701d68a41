//! Drift states and the summary of many objects' states.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{DriftError, ObjectDrift};

/// Where one object stands, ordered from best to worst
/// (`InSync < Modified < Missing < Extra < Unknown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftState {
    /// The live object is what applying the desired one would leave.
    InSync,
    /// The live object differs from what applying would leave; the
    /// differing fields are listed.
    Modified,
    /// The desired object does not exist in the cluster.
    Missing,
    /// The object exists in the cluster, was applied by Pilothouse before,
    /// and Git no longer has it.
    Extra,
    /// The comparison could not be made (the cluster was unreachable, the
    /// dry-run was refused …); the caller records why.
    Unknown,
}

impl DriftState {
    /// Every state, best first.
    pub const ALL: [DriftState; 5] = [
        DriftState::InSync,
        DriftState::Modified,
        DriftState::Missing,
        DriftState::Extra,
        DriftState::Unknown,
    ];

    /// The state's name: `in_sync`, `modified`, `missing`, `extra` or `unknown`
    /// (the same as its serde form).
    pub fn as_str(self) -> &'static str {
        match self {
            DriftState::InSync => "in_sync",
            DriftState::Modified => "modified",
            DriftState::Missing => "missing",
            DriftState::Extra => "extra",
            DriftState::Unknown => "unknown",
        }
    }

    /// Whether the state is drift: modified, missing or extra.
    pub fn is_drift(self) -> bool {
        matches!(
            self,
            DriftState::Modified | DriftState::Missing | DriftState::Extra
        )
    }
}

impl fmt::Display for DriftState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DriftState {
    type Err = DriftError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DriftState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| DriftError::UnknownState {
                value: s.to_owned(),
            })
    }
}

/// How many objects are in each state, and how many fields differ.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DriftSummary {
    /// All objects counted.
    pub total: usize,
    /// Objects in sync.
    pub in_sync: usize,
    /// Modified objects.
    pub modified: usize,
    /// Missing objects.
    pub missing: usize,
    /// Extra objects.
    pub extra: usize,
    /// Objects whose state is unknown.
    pub unknown: usize,
    /// Differing fields, added up over the modified objects.
    pub changed_fields: usize,
}

impl DriftSummary {
    /// Counts one more object.
    pub fn add(&mut self, drift: &ObjectDrift) {
        self.total += 1;
        self.changed_fields += drift.diffs.len();
        *self.count_mut(drift.state) += 1;
    }

    /// How many objects are in `state`.
    pub fn count(&self, state: DriftState) -> usize {
        match state {
            DriftState::InSync => self.in_sync,
            DriftState::Modified => self.modified,
            DriftState::Missing => self.missing,
            DriftState::Extra => self.extra,
            DriftState::Unknown => self.unknown,
        }
    }

    fn count_mut(&mut self, state: DriftState) -> &mut usize {
        match state {
            DriftState::InSync => &mut self.in_sync,
            DriftState::Modified => &mut self.modified,
            DriftState::Missing => &mut self.missing,
            DriftState::Extra => &mut self.extra,
            DriftState::Unknown => &mut self.unknown,
        }
    }

    /// Objects that drifted: modified, missing or extra.
    pub fn drifted(&self) -> usize {
        self.modified + self.missing + self.extra
    }

    /// The worst state counted; `None` when nothing was counted.
    pub fn worst(&self) -> Option<DriftState> {
        DriftState::ALL
            .into_iter()
            .rev()
            .find(|state| self.count(*state) > 0)
    }
}

/// Counts the objects in each state.
pub fn summarize(drifts: &[ObjectDrift]) -> DriftSummary {
    let mut summary = DriftSummary::default();
    for drift in drifts {
        summary.add(drift);
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, expected: Result<DriftState, ()>) {
        assert_eq!(
            name.parse::<DriftState>().map_err(|_| ()),
            expected,
            "{name}"
        );
        if let Ok(state) = expected {
            assert_eq!(state.to_string(), name);
            assert_eq!(
                serde_json::to_value(state).expect("serialize"),
                serde_json::Value::String(name.to_owned())
            );
        }
    }

    #[test]
    fn states_parse_and_print() {
        check("in_sync", Ok(DriftState::InSync));
        check("modified", Ok(DriftState::Modified));
        check("missing", Ok(DriftState::Missing));
        check("extra", Ok(DriftState::Extra));
        check("unknown", Ok(DriftState::Unknown));
        check("InSync", Err(()));
        check("", Err(()));
    }

    #[test]
    fn states_are_ordered_best_to_worst() {
        let mut sorted = DriftState::ALL;
        sorted.sort();
        assert_eq!(sorted, DriftState::ALL);
        assert!(DriftState::InSync < DriftState::Modified);
        assert!(DriftState::Extra < DriftState::Unknown);
    }
}
