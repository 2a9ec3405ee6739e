//! The `webhook-gateway` binary; everything lives in [`gateway::cli`].

fn main() -> anyhow::Result<()> {
    gateway::cli::main()
}
