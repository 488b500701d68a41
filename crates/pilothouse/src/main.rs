//! The `pilothouse` binary: parses the command line and hands over to a command.

use clap::Parser;

mod checks;
mod cli;
mod controller;
mod credentials;
mod monitor;
mod tasks;

fn main() -> std::process::ExitCode {
    cli::Cli::parse().run()
}
