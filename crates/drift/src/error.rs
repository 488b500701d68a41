//! The crate's one error type.

/// What can be wrong with the input this crate parses: names of drift states
/// and ignore rules (the comparison itself cannot fail).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriftError {
    /// A string is not the name of a drift state.
    #[error(
        "unknown drift state `{value}` (expected in_sync, modified, missing, extra or unknown)"
    )]
    UnknownState {
        /// The string given.
        value: String,
    },

    /// An ignore rule's pointer is not a JSON pointer (RFC 6901).
    #[error("invalid JSON pointer `{pointer}`: {reason}")]
    InvalidPointer {
        /// The pointer given.
        pointer: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// An ignore rule names an empty field manager.
    #[error("ignore rule: the field manager name is empty")]
    EmptyManager,
}
