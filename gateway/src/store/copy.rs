//! `webhook-gateway store copy`: moves a SQLite store into PostgreSQL (in progress).
