//! The vocabulary every Pilothouse crate shares.
//!
//! Values that several crates name — how long to wait before a retry, a
//! duration as a person writes it — are defined here once, so that the
//! store, the cluster client, the incident engine, the notifier and the API
//! cannot disagree on them. This crate is a leaf: it depends on none of
//! ours, does no I/O and keeps no state.

mod backoff;
mod cloud;
mod duration;
mod incident;
mod sync;
mod text_enum;
mod time;

pub use backoff::{Backoff, jittered};
pub use cloud::{Cloud, UnknownCloud};
pub use duration::{DurationError, format_duration, parse_duration};
pub use incident::{IncidentStatus, IncidentWrite, Severity};
pub use sync::{Health, ObjectAction};
pub use time::{now_ms, rfc3339};
