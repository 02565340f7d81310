//! The `nbo-stream` command line: parses the arguments and runs the verb. The verbs live in
//! `cli/` by role (arguments, long-running, data, administration) and call into the library.

use anyhow::Result;
use clap::Parser;
use cli::args::{Cli, Command, ExportCommand, FeaturesCommand, TopicsCommand};
use cli::{admin, data, rules, serve, simulate};
use nbo_stream::registry;

mod cli;

/// mimalloc: the pipeline allocates many small, short-lived strings per batch (decoded fields,
/// decision records); mimalloc serves them markedly faster than glibc malloc
/// (`cargo bench --bench operator`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Prints errors as one readable chain (`error: what: why`), without a backtrace, and exits 1
/// (`schemas`: 1 for an incompatible schema, 2 when the check could not be made).
fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let schemas = matches!(cli.command, Command::Schemas { .. });
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            let incompatible = e
                .downcast_ref::<registry::tooling::Incompatible>()
                .is_some();
            std::process::ExitCode::from(if schemas && !incompatible { 2 } else { 1 })
        }
    }
}

/// Runs one verb.
async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run { config } => serve::run(config).await,
        Command::Console {
            config,
            hash_password,
        } => serve::console(config, hash_password).await,
        Command::Api {
            config,
            hash_key,
            new_key,
        } => serve::api(config, hash_key, new_key).await,
        Command::Demo(args) => serve::demo(args).await,
        Command::Generate(args) => data::generate(args).await,
        Command::Backtest(args) => data::backtest(args),
        Command::Export {
            command: ExportCommand::Training(args),
        } => data::export_training(args).await,
        Command::Simulate(args) => simulate::simulate(args).await,
        Command::Topics {
            command:
                TopicsCommand::Create {
                    config,
                    specs,
                    partitions,
                },
        } => admin::topics_create(config, specs, partitions).await,
        Command::Rules { command } => rules::rules(command).await,
        Command::Schemas { command } => admin::schemas(command).await,
        Command::Features {
            command:
                FeaturesCommand::Show {
                    customer_id,
                    config,
                },
        } => admin::features_show(customer_id, config).await,
    }
}
