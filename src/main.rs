//! The `devgate` binary: parse the command line, set up logging on stderr, run the command.

mod cli;

/// Each call allocates many small, short-lived objects (JSON values, strings); mimalloc serves them from
/// per-thread pages where glibc's malloc spent about a tenth of devgate's CPU (benches/harness.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// mimalloc option ids (v3's `mi_option_e`): commit arena memory only when used, and give freed pages
/// back at once, so RSS stays near what is live (the memory budget in benches/harness.rs).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Runs from the platform's list of initialisers (ELF `.init_array`, Mach-O `__mod_init_func`), before
/// `main` and before Rust allocates, so the options hold for the first arena too. Where devgate knows no
/// such list (Windows), `main` calls it first thing: only what std allocated before `main` predates it.
extern "C" fn mimalloc_options() {
    // SAFETY: plain setters, called before any other thread exists.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[used]
#[unsafe(link_section = ".init_array")]
static MIMALLOC_OPTIONS: extern "C" fn() = mimalloc_options;

/// Mach-O has no `.init_array` (the name does not even assemble there); its initialisers are here.
#[cfg(target_vendor = "apple")]
#[used]
#[unsafe(link_section = "__DATA,__mod_init_func")]
static MIMALLOC_OPTIONS: extern "C" fn() = mimalloc_options;

fn main() -> ExitCode {
    #[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
    mimalloc_options();
    devgate::app::install_tls_provider();
    let cli = cli::Cli::parse();
    // One stdio connection is one client whose calls are small and mostly waiting on the provider: a
    // single-threaded runtime keeps each call on one thread instead of waking the other worker for every
    // message (measured in benches/harness.rs). The HTTP server runs the same way: its connections are
    // served by connection threads, each with its own single-threaded runtime (`devgate http --threads`,
    // default one per core; transport/http.rs), and this runtime only accepts them and runs the
    // background work. The sandbox keeps a worker per core for its simulators and gateway together.
    let runtime = match cli.command {
        cli::Command::Stdio { .. } | cli::Command::Http { .. } => {
            tokio::runtime::Builder::new_current_thread()
        }
        _ => tokio::runtime::Builder::new_multi_thread(),
    }
    .enable_all()
    .build();
    match runtime {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(e) => {
            eprintln!("devgate: could not start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: cli::Cli) -> ExitCode {
    let filter =
        EnvFilter::try_from_env("DEVGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info,rmcp=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(devgate::redact::RedactingStderr)
        .with_ansi(false);
    match cli.log_format {
        cli::LogFormat::Json => builder.json().init(),
        cli::LogFormat::Text => builder.init(),
    }
    match cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("devgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}
