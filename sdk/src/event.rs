//! The incoming event: a JSON object with `event_type` plus any fields (Squadcast's payload is the
//! reference shape). Read fields by dotted path or deserialize the whole event into your own type.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// An event as the gateway received it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    value: Value,
}

impl Event {
    /// Parses event JSON text.
    pub fn from_json(text: &str) -> crate::Result<Self> {
        let value = serde_json::from_str(text)
            .map_err(|e| crate::Error::invalid_event(format!("event is not JSON: {e}")))?;
        Ok(Event { value })
    }

    /// Wraps an already parsed value (handy in tests).
    pub fn from_value(value: Value) -> Self {
        Event { value }
    }

    /// The whole event.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The value at a dotted path (`service.name`, `assigned_to.0.id`); `None` when absent.
    pub fn get(&self, path: &str) -> Option<&Value> {
        lookup(&self.value, path)
    }

    /// The string at a dotted path; `None` when absent or not a string.
    pub fn str(&self, path: &str) -> Option<&str> {
        self.get(path).and_then(Value::as_str)
    }

    /// Deserializes the whole event into `T` (typed access through serde).
    pub fn parse<T: DeserializeOwned>(&self) -> crate::Result<T> {
        T::deserialize(&self.value).map_err(|e| crate::Error::invalid_event(e.to_string()))
    }
}

/// Follows a dotted path through objects (by key) and arrays (by index).
pub fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(value);
    }
    path.split('.').try_fold(value, |v, part| match v {
        Value::Object(map) => map.get(part),
        Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dotted_paths_reach_objects_and_arrays() {
        let e = Event::from_value(json!({"service": {"name": "api"}, "assigned_to": [{"id": "u1"}]}));
        assert_eq!(e.str("service.name"), Some("api"));
        assert_eq!(e.str("assigned_to.0.id"), Some("u1"));
        assert_eq!(e.get("service.missing"), None);
        assert_eq!(e.get("assigned_to.x"), None);
    }

    #[test]
    fn non_json_is_an_invalid_event() {
        assert!(matches!(Event::from_json("{"), Err(crate::Error::InvalidEvent(_))));
    }
}
