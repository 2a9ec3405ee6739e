//! The incoming event: a JSON object with `event_type` plus any fields (Squadcast's payload is the
//! reference shape). Read fields by dotted path, or deserialize the event into your own type.
//!
//! The event keeps its JSON text and builds the generic [`Value`] tree only when a path accessor
//! first needs it. [`Event::parse`] deserializes straight from the text, so a typed plugin never
//! pays for the tree, and its structs may borrow strings from the event (`&'a str`, `Cow<'a, str>`).

use std::sync::OnceLock;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

/// An event as the gateway received it.
#[derive(Debug, Clone)]
pub struct Event {
    text: String,
    value: OnceLock<Value>,
}

impl Event {
    /// Takes event JSON text; refuses text that is not JSON (checked without building a tree).
    pub fn from_json(text: impl Into<String>) -> crate::Result<Self> {
        let text = text.into();
        serde_json::from_str::<IgnoredAny>(&text)
            .map_err(|e| crate::Error::invalid_event(format!("event is not JSON: {e}")))?;
        Ok(Event { text, value: OnceLock::new() })
    }

    /// Takes text already known to be JSON without scanning it. The entry glue uses it for the
    /// event the host passes in (the gateway validated it at intake; in a plugin call a second
    /// scan costs more than a typed read). Were the text not JSON, the path accessors would
    /// answer `None` and [`Event::parse`] an `InvalidEvent` error.
    pub fn from_json_unchecked(text: String) -> Self {
        Event { text, value: OnceLock::new() }
    }

    /// Wraps an already parsed value (handy in tests).
    pub fn from_value(value: Value) -> Self {
        Event { text: value.to_string(), value: OnceLock::from(value) }
    }

    /// The event's JSON text, as the gateway sent it.
    pub fn json(&self) -> &str {
        &self.text
    }

    /// The whole event as a generic JSON value (parsed on first use).
    pub fn value(&self) -> &Value {
        self.value.get_or_init(|| serde_json::from_str(&self.text).unwrap_or(Value::Null))
    }

    /// The value at a dotted path (`service.name`, `assigned_to.0.id`); `None` when absent.
    pub fn get(&self, path: &str) -> Option<&Value> {
        lookup(self.value(), path)
    }

    /// The string at a dotted path; `None` when absent or not a string.
    pub fn str(&self, path: &str) -> Option<&str> {
        self.get(path).and_then(Value::as_str)
    }

    /// Deserializes the event into `T` straight from its text (typed access through serde; the
    /// fastest way to read an event). `T` may borrow from the event.
    pub fn parse<'a, T: Deserialize<'a>>(&'a self) -> crate::Result<T> {
        serde_json::from_str(&self.text).map_err(|e| crate::Error::invalid_event(e.to_string()))
    }
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.value() == other.value()
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
    use std::borrow::Cow;

    #[test]
    fn dotted_paths_reach_objects_and_arrays() {
        let e = Event::from_value(json!({"service": {"name": "api"}, "assigned_to": [{"id": "u1"}]}));
        assert_eq!(e.str("service.name"), Some("api"));
        assert_eq!(e.str("assigned_to.0.id"), Some("u1"));
        assert_eq!(e.get("service.missing"), None);
        assert_eq!(e.get("assigned_to.x"), None);
    }

    #[test]
    fn text_events_answer_paths_and_typed_reads_alike() {
        #[derive(Deserialize)]
        struct Service<'a> {
            #[serde(borrow)]
            name: Cow<'a, str>,
        }
        #[derive(Deserialize)]
        struct Incident<'a> {
            id: &'a str,
            #[serde(borrow)]
            service: Service<'a>,
        }
        let e = Event::from_json(r#"{"id": "i1", "service": {"name": "a\"b"}, "extra": [1, 2]}"#).unwrap();
        let typed: Incident = e.parse().unwrap();
        assert_eq!(typed.id, "i1");
        assert!(matches!(typed.service.name, Cow::Owned(_)), "an escaped string cannot be borrowed");
        assert_eq!(typed.service.name, "a\"b");
        assert_eq!(e.str("service.name"), Some("a\"b"));
        assert_eq!(e, Event::from_value(json!({"id": "i1", "service": {"name": "a\"b"}, "extra": [1, 2]})));
        assert!(matches!(e.parse::<Vec<u8>>(), Err(crate::Error::InvalidEvent(_))));
    }

    #[test]
    fn non_json_is_an_invalid_event() {
        assert!(matches!(Event::from_json("{"), Err(crate::Error::InvalidEvent(_))));
        assert!(matches!(Event::from_json("{} x"), Err(crate::Error::InvalidEvent(_))));
        let unchecked = Event::from_json_unchecked("{".into());
        assert_eq!(unchecked.get("a"), None);
        assert!(matches!(unchecked.parse::<Value>(), Err(crate::Error::InvalidEvent(_))));
    }
}
