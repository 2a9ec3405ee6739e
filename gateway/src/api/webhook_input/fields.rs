//! Reading one field of a body: absent, null or a value of the right type, refusals naming the field.

use serde_json::Value;

use super::Input;
use crate::api::error::ApiError;
use crate::model::webhook::MASK;

/// `None`: absent. `Some(None)`: explicitly null.
pub(super) fn nullable_str(
    m: &Input,
    k: &str,
    max: usize,
) -> Result<Option<Option<String>>, ApiError> {
    match m.get(k) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) if s.len() > max => {
            Err(ApiError::field(k, format!("must be at most {max} bytes")))
        }
        Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
        Some(_) => Err(ApiError::field(k, "must be a string or null")),
    }
}

pub(super) fn required_str(m: &Input, k: &str, max: usize) -> Result<Option<String>, ApiError> {
    match nullable_str(m, k, max)? {
        None => Ok(None),
        Some(None) => Err(ApiError::field(k, "must not be null")),
        Some(Some(s)) => Ok(Some(s)),
    }
}

pub(super) fn bool_field(m: &Input, k: &str) -> Result<Option<bool>, ApiError> {
    match m.get(k) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ApiError::field(k, "must be true or false")),
    }
}

/// Parses a typed field with serde, naming the field on failure.
pub(super) fn typed<T: serde::de::DeserializeOwned>(
    m: &Input,
    k: &str,
) -> Result<Option<T>, ApiError> {
    match m.get(k) {
        None => Ok(None),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| ApiError::field(k, e.to_string())),
    }
}

pub(super) fn string_list(
    m: &Input,
    k: &str,
    max: usize,
) -> Result<Option<Option<Vec<String>>>, ApiError> {
    match m.get(k) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::Array(items)) => {
            if items.len() > max {
                return Err(ApiError::field(k, format!("must list at most {max} items")));
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, it) in items.iter().enumerate() {
                match it.as_str() {
                    Some(s) if !s.is_empty() && s.len() <= 1024 => out.push(s.to_string()),
                    _ => {
                        return Err(ApiError::field(
                            format!("{k}[{i}]"),
                            "must be a non-empty string",
                        ));
                    }
                }
            }
            Ok(Some(Some(out)))
        }
        Some(_) => Err(ApiError::field(k, "must be an array of strings or null")),
    }
}

/// Keeps the stored secret when a client sends back the mask it was shown.
pub(super) fn secret_update(
    m: &Input,
    k: &str,
    current: &mut Option<String>,
) -> Result<(), ApiError> {
    if let Some(v) = nullable_str(m, k, 1024)?
        && v.as_deref() != Some(MASK)
    {
        *current = v;
    }
    Ok(())
}
