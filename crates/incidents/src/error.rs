//! The crate's one error type.

/// What can be wrong with the configuration this crate parses (detection,
/// grouping and dispatching themselves cannot fail).
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

    /// A string is not the name of a [`Label`](crate::Label).
    #[error(
        "unknown label `{value}`; expected one of cluster, namespace, workload_kind, workload, container, reason, severity"
    )]
    UnknownLabel {
        /// The string given.
        value: String,
    },

    /// A string is not a [`MatchOp`](crate::MatchOp).
    #[error("unknown matcher operator `{value}`; expected one of =, !=, =~, !~")]
    UnknownMatchOp {
        /// The string given.
        value: String,
    },

    /// The value of a regex [`Matcher`](crate::Matcher) is not a regular
    /// expression.
    #[error("invalid regular expression `{pattern}` in a matcher")]
    InvalidMatcherRegex {
        /// The pattern given (before anchoring).
        pattern: String,
        /// Why the regex crate refused it.
        #[source]
        source: regex::Error,
    },

    /// Matchers are not a JSON array.
    #[error(
        "matchers must be a JSON array of {{\"label\", \"op\", \"value\"}} objects, not {found}"
    )]
    NotMatchers {
        /// What was given instead (`an object`, `a string` …).
        found: String,
    },

    /// One matcher of a list is not valid.
    #[error("matchers[{index}] {matcher} is invalid: {problem}")]
    InvalidMatcher {
        /// Its position in the list, from 0.
        index: usize,
        /// The matcher as given (compact JSON).
        matcher: String,
        /// What is wrong with it.
        problem: String,
        /// Why the regex crate refused its pattern, when that is the problem.
        #[source]
        source: Option<regex::Error>,
    },
}
