//! API bearer tokens. Only the SHA-256 of a token's secret is stored; the
//! secret itself is returned once, by [`Store::create_token`].

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::decode;
use crate::store::now_ms;
use crate::{Store, StoreError};

/// Prefix of every token secret, so leaked tokens are easy to recognise
/// (secret scanners, logs).
pub const TOKEN_PREFIX: &str = "ph_";

/// `last_used_at` is written at most this often per token, so
/// authenticating is not a write per request.
const LAST_USED_RESOLUTION_MS: i64 = 60_000;

/// Columns of `api_tokens` that make a [`TokenRow`].
macro_rules! token_columns {
    () => {
        "id, name, scope, created_at, last_used_at"
    };
}

/// What a token may do. `Write` implies `Read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read-only access.
    Read,
    /// Read and write access.
    Write,
}

impl Scope {
    /// The lowercase name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
        }
    }

    /// Whether a token with this scope may do what `needed` requires.
    pub fn allows(self, needed: Scope) -> bool {
        self >= needed
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A scope name that is not `read` or `write`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope `{0}` (expected read or write)")]
pub struct UnknownScope(pub String);

impl FromStr for Scope {
    type Err = UnknownScope;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(Scope::Read),
            "write" => Ok(Scope::Write),
            _ => Err(UnknownScope(s.to_owned())),
        }
    }
}

/// An API token as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    /// Unique id (never reused, even after revocation).
    pub id: i64,
    /// What the token is for, chosen by its creator.
    pub name: String,
    /// What it may do.
    pub scope: Scope,
    /// When it was created (unix ms).
    pub created_at: i64,
    /// When it last authenticated a request (unix ms, to the minute).
    pub last_used_at: Option<i64>,
}

impl Store {
    /// Creates a token and returns it with its secret (`ph_` followed by 43
    /// base64url characters: 256 random bits). The secret is not stored and
    /// cannot be shown again.
    pub async fn create_token(
        &self,
        name: &str,
        scope: Scope,
    ) -> Result<(ApiToken, String), StoreError> {
        let mut random = [0u8; 32];
        SystemRandom::new()
            .fill(&mut random)
            .map_err(|_| StoreError::Crypto("the system random number generator failed"))?;
        let secret = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(random));
        let sql = concat!(
            "INSERT INTO api_tokens (name, scope, secret_sha256, created_at) \
             VALUES (?, ?, ?, ?) RETURNING ",
            token_columns!()
        );
        let row = sqlx::query_as::<_, TokenRow>(sql)
            .bind(name)
            .bind(scope.as_str())
            .bind(secret_hash(&secret).as_slice())
            .bind(now_ms())
            .fetch_one(&self.writer)
            .await
            .map_err(|e| StoreError::from_write(e, || "a token with this secret".to_owned()))?;
        Ok((row.try_into()?, secret))
    }

    /// The live token whose secret this is; `None` for an unknown or revoked
    /// one. Records the use, at most once a minute per token.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<ApiToken>, StoreError> {
        let sql = concat!(
            "SELECT ",
            token_columns!(),
            " FROM api_tokens WHERE secret_sha256 = ? AND revoked_at IS NULL"
        );
        let row = sqlx::query_as::<_, TokenRow>(sql)
            .bind(secret_hash(secret).as_slice())
            .fetch_optional(&self.reader)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut token = ApiToken::try_from(row)?;

        let now = now_ms();
        let stale = token
            .last_used_at
            .is_none_or(|used| now - used >= LAST_USED_RESOLUTION_MS);
        if stale {
            let updated = sqlx::query(
                "UPDATE api_tokens SET last_used_at = ?1 \
                 WHERE id = ?2 AND (last_used_at IS NULL OR last_used_at <= ?1 - ?3)",
            )
            .bind(now)
            .bind(token.id)
            .bind(LAST_USED_RESOLUTION_MS)
            .execute(&self.writer)
            .await?;
            if updated.rows_affected() > 0 {
                token.last_used_at = Some(now);
            }
        }
        Ok(Some(token))
    }

    /// The live (not revoked) tokens, oldest first.
    pub async fn list_tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        let sql = concat!(
            "SELECT ",
            token_columns!(),
            " FROM api_tokens WHERE revoked_at IS NULL ORDER BY id"
        );
        let rows = sqlx::query_as::<_, TokenRow>(sql)
            .fetch_all(&self.reader)
            .await?;
        rows.into_iter().map(ApiToken::try_from).collect()
    }

    /// Revokes a token at once; `false` if there is no live token with this
    /// id.
    pub async fn revoke_token(&self, id: i64) -> Result<bool, StoreError> {
        let result =
            sqlx::query("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(now_ms())
                .bind(id)
                .execute(&self.writer)
                .await?;
        Ok(result.rows_affected() > 0)
    }

    /// The number of live (not revoked) tokens.
    pub async fn count_tokens(&self) -> Result<u64, StoreError> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens WHERE revoked_at IS NULL")
                .fetch_one(&self.reader)
                .await?;
        Ok(count.try_into().unwrap_or(0))
    }
}

fn secret_hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// A row of `api_tokens` as [`token_columns!`] selects it.
#[derive(sqlx::FromRow)]
struct TokenRow {
    id: i64,
    name: String,
    scope: String,
    created_at: i64,
    last_used_at: Option<i64>,
}

impl TryFrom<TokenRow> for ApiToken {
    type Error = StoreError;

    fn try_from(row: TokenRow) -> Result<ApiToken, StoreError> {
        Ok(ApiToken {
            id: row.id,
            name: row.name,
            scope: decode::text(&row.scope, "api_tokens.scope")?,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
        })
    }
}

#[cfg(test)]
mod tests;
