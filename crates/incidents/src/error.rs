//! The crate's one error type.

/// What can be wrong with the configuration this crate parses (detection
/// and grouping themselves cannot fail).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IncidentsError {
    /// A string is not the name of a [`Reason`](crate::Reason).
    #[error("unknown incident reason `{value}`")]
    UnknownReason {
        /// The string given.
        value: String,
    },

    /// An exclusion pattern for pod names is not a regular expression.
    #[error("invalid pod name pattern `{pattern}`")]
    InvalidPattern {
        /// The pattern given.
        pattern: String,
        /// Why the regex crate refused it.
        #[source]
        source: regex::Error,
    },
}
