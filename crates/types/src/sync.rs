//! What a sync did and how healthy things are.

use crate::text_enum;

text_enum! {
    /// Health of an object or of a whole cluster (the worst of its objects).
    /// Ordered from best to worst.
    pub enum Health ("health") {
        /// Ready as desired.
        Healthy = "healthy",
        /// Not there yet (rolling out, pending).
        Progressing = "progressing",
        /// Not assessed, or cannot be judged.
        Unknown = "unknown",
        /// The object does not exist.
        Missing = "missing",
        /// Failed to get there (deadline exceeded, job failed, volume lost).
        Degraded = "degraded",
    }
}

impl Health {
    /// The health of a set: the worst of its members (`Healthy` when empty).
    pub fn worst(healths: impl IntoIterator<Item = Health>) -> Health {
        healths.into_iter().max().unwrap_or(Health::Healthy)
    }
}

text_enum! {
    /// What a sync did to one object.
    pub enum ObjectAction ("object action") {
        /// It did not exist and was created.
        Created = "created",
        /// It existed and was changed.
        Configured = "configured",
        /// It already matched.
        Unchanged = "unchanged",
        /// It left the desired state and was deleted.
        Pruned = "pruned",
        /// It left the desired state but was kept (prune disabled on it, or
        /// it was recreated by someone else).
        PruneSkipped = "prune_skipped",
        /// The API server refused it, or the call failed.
        Failed = "failed",
    }
}
