//! API keys: tokens are shown once and stored as their sha256. Requests carry them as
//! `Authorization: <token>` (Grafana OnCall's form) or `Authorization: Bearer <token>`.
//!
//! Roles: an admin may do everything; a manager manages the webhooks of its own team (team and
//! service scopes) and may post and read events.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use parking_lot::RwLock;
use rand::Rng;
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::ApiError;
use crate::model::{ApiKey, Role, Scope, new_id};
use crate::store::{Store, StoreResult};

/// Hex sha256 of a token: what the store keeps.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random token: `gw_` + 40 alphanumerics (about 238 bits).
pub fn new_token() -> String {
    let mut rng = rand::thread_rng();
    let s: String = (0..40)
        .map(|_| rng.sample(rand::distributions::Alphanumeric) as char)
        .collect();
    format!("gw_{s}")
}

/// Creates and stores a key; returns it with the clear token (shown once).
pub async fn create_key(
    store: &dyn Store,
    name: &str,
    role: Role,
    team_id: Option<String>,
    token: Option<String>,
) -> StoreResult<(ApiKey, String)> {
    let token = token.unwrap_or_else(new_token);
    let key = ApiKey {
        id: new_id("key"),
        name: name.to_string(),
        role,
        team_id,
        token_hash: hash_token(&token),
        created_at: chrono::Utc::now().timestamp_millis(),
    };
    store.insert_api_key(key.clone()).await?;
    Ok((key, token))
}

/// Keys already looked up (there is no revocation yet, so positive answers never go stale).
#[derive(Default, Clone)]
pub struct KeyCache(Arc<RwLock<HashMap<String, ApiKey>>>);

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key_id: String,
    pub role: Role,
    pub team_id: Option<String>,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::Forbidden("this needs an admin key".into()))
        }
    }

    /// May this caller manage a webhook in `scope`? Admins: all. Managers: their team's team and
    /// service webhooks only.
    pub fn may_manage(&self, scope: &Scope) -> Result<(), ApiError> {
        if self.is_admin() {
            return Ok(());
        }
        match (scope, scope.team(), &self.team_id) {
            (Scope::Global, _, _) => Err(ApiError::Forbidden(
                "only an admin manages global webhooks".into(),
            )),
            (_, Some(t), Some(mine)) if t == mine => Ok(()),
            _ => Err(ApiError::Forbidden(
                "this webhook belongs to another team".into(),
            )),
        }
    }
}

fn token_from(parts: &Parts) -> Option<&str> {
    let v = parts
        .headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let token = match v.split_once(' ') {
        Some((scheme, rest))
            if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token") =>
        {
            rest.trim()
        }
        _ => v,
    };
    (!token.is_empty()).then_some(token)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = token_from(parts).ok_or(ApiError::Unauthorized)?;
        let hash = hash_token(token);
        let cached = state.keys.0.read().get(&hash).cloned();
        let key = match cached {
            Some(k) => k,
            None => {
                let k = state
                    .store
                    .api_key_by_hash(&hash)
                    .await?
                    .ok_or(ApiError::Unauthorized)?;
                state.keys.0.write().insert(hash, k.clone());
                k
            }
        };
        Ok(Caller {
            key_id: key.id,
            role: key.role,
            team_id: key.team_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managers_only_touch_their_team() {
        let m = Caller {
            key_id: "k".into(),
            role: Role::Manager,
            team_id: Some("T1".into()),
        };
        assert!(
            m.may_manage(&Scope::Team {
                team_id: "T1".into()
            })
            .is_ok()
        );
        assert!(
            m.may_manage(&Scope::Service {
                team_id: Some("T1".into()),
                service_id: "S".into()
            })
            .is_ok()
        );
        assert!(
            m.may_manage(&Scope::Team {
                team_id: "T2".into()
            })
            .is_err()
        );
        assert!(
            m.may_manage(&Scope::Service {
                team_id: None,
                service_id: "S".into()
            })
            .is_err()
        );
        assert!(m.may_manage(&Scope::Global).is_err());
        let a = Caller {
            key_id: "k".into(),
            role: Role::Admin,
            team_id: None,
        };
        assert!(a.may_manage(&Scope::Global).is_ok());
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(hash_token(&a).len(), 64);
        assert_ne!(hash_token(&a), a);
    }
}
