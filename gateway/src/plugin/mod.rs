//! The sandboxed WebAssembly plugin host.
