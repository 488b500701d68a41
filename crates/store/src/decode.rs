//! Turning stored values into domain values, the same way for every table.
//!
//! Rows are read by column *name* into `#[derive(sqlx::FromRow)]` structs of
//! plain column types (text, integers, blobs), one per domain type next to
//! it; each converts into its domain type with `TryFrom`, through the
//! functions here. A value this version does not understand (an unknown
//! enum name, JSON that does not parse, a count out of range) is a
//! [`StoreError::InvalidRow`] naming the column — never skipped, never
//! replaced by a default.

use std::fmt;
use std::str::FromStr;

use serde::de::DeserializeOwned;

use crate::{SealedSecret, StoreError};

/// An enumeration stored as its name (TEXT), read through its `FromStr`.
pub(crate) fn text<T>(value: &str, column: &'static str) -> Result<T, StoreError>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    value.parse().map_err(|e: T::Err| StoreError::InvalidRow {
        column,
        reason: e.to_string(),
    })
}

/// A nullable enumeration column.
pub(crate) fn optional_text<T>(
    value: Option<&str>,
    column: &'static str,
) -> Result<Option<T>, StoreError>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    value.map(|value| text(value, column)).transpose()
}

/// A JSON column (TEXT).
pub(crate) fn json<T: DeserializeOwned>(
    value: &str,
    column: &'static str,
) -> Result<T, StoreError> {
    serde_json::from_str(value).map_err(|e| StoreError::InvalidRow {
        column,
        reason: e.to_string(),
    })
}

/// A nullable JSON column.
pub(crate) fn optional_json<T: DeserializeOwned>(
    value: Option<&str>,
    column: &'static str,
) -> Result<Option<T>, StoreError> {
    value.map(|value| json(value, column)).transpose()
}

/// An INTEGER column holding a count or another non-negative number: a value
/// the domain type cannot hold (negative, or too large) is refused, not
/// clamped.
pub(crate) fn number<T: TryFrom<i64>>(value: i64, column: &'static str) -> Result<T, StoreError> {
    T::try_from(value).map_err(|_| StoreError::InvalidRow {
        column,
        reason: format!("{value} is out of range"),
    })
}

/// A namespace column: `''` stands for "none" (cluster-scoped objects, node
/// incidents), so that it can be part of a key.
pub(crate) fn namespace(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

/// A sealed secret as its three columns, selected as `key_id`, `nonce` and
/// `ciphertext` whatever the table calls them.
#[derive(sqlx::FromRow)]
pub(crate) struct SealedRow {
    key_id: String,
    nonce: Vec<u8>,
    ciphertext: Vec<u8>,
}

impl From<SealedRow> for SealedSecret {
    fn from(row: SealedRow) -> SealedSecret {
        SealedSecret {
            key_id: row.key_id,
            nonce: row.nonce,
            ciphertext: row.ciphertext,
        }
    }
}
