//! The gateway's own command line, built inside the test package so end-to-end tests can start
//! the real binary (`CARGO_BIN_EXE_gateway-under-test`), kill it and restart it.

fn main() -> anyhow::Result<()> {
    gateway::cli::main()
}
