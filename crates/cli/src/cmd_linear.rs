//! (to be written)

#[derive(clap::Subcommand)]
pub enum Command {
    /// (to be written)
    Todo,
}

pub fn run(_command: Command) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
