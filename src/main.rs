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

/// Turns transparent huge pages off for this process, unless `MIMALLOC_ALLOW_THP` is set (then
/// mimalloc does as it says). mimalloc asks the kernel for huge pages on its memory, and the
/// kernel then zeroes 2 MiB at a page's first touch: during a drain a quarter of the process's
/// CPU went to zeroing pages (`clear_page_erms` under `do_huge_pmd_anonymous_page`). Without
/// them `scripts/bench.sh` measured about 18% less CPU per event (README, "Performance").
fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: PR_SET_THP_DISABLE takes integer arguments only and touches no memory of
        // ours; it fails only on kernels without it (before 3.15), which is harmless.
        unsafe {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
}

/// Prints errors as one readable chain (`error: what: why`), without a backtrace, and exits 1
/// (`schemas`: 1 for an incompatible schema, 2 when the check could not be made).
fn main() -> std::process::ExitCode {
    no_huge_pages();
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
