//! Delivery: workers, request shaping, auth, signing, retry decisions and the outbound guard.
