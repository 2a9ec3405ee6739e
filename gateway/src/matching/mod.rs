//! Matching: which webhooks an event fires.
