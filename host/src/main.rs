//! `edge-host`: a small native host that runs Spin HTTP apps (`spin.toml`, Spin's runtime-config
//! format, Spin's interfaces) on wasmtime, for machines where the `spin` CLI cannot be installed.
//! The command line is shaped like `spin up`.

mod admission;
mod app;
mod bindings;
mod kv;
mod manifest;
mod outbound;
mod output;
mod pg_error;
mod pg_pool;
mod pg_tls;
mod pg_values;
mod postgres;
mod postgres_v3;
mod reply;
mod router;
mod runtime_config;
mod server;
mod sqlite;
mod sqlite_pool;
mod state;
mod variables;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "edge-host",
    version,
    about = "Run a Spin HTTP app on wasmtime, like `spin up`"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the app's HTTP triggers.
    Up(UpArgs),
    /// Run each component's build command, as `spin build` does.
    Build {
        /// The manifest (or the directory holding `spin.toml`).
        #[arg(short = 'f', long = "from", default_value = "spin.toml")]
        from: PathBuf,
    },
}

#[derive(clap::Args)]
struct UpArgs {
    /// The manifest (or the directory holding `spin.toml`).
    #[arg(short = 'f', long = "from", default_value = "spin.toml")]
    from: PathBuf,
    /// Address to listen on (port 0 picks a free port; the banner prints the real one).
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Spin runtime-config file (key-value stores, SQLite databases).
    #[arg(long = "runtime-config-file")]
    runtime_config_file: Option<PathBuf>,
    /// Directory for the default stores, relative to the working directory (as on `spin up`);
    /// default `.spin/` beside the manifest; "" for none.
    #[arg(long = "state-dir")]
    state_dir: Option<String>,
    /// Run the components' build commands first.
    #[arg(long)]
    build: bool,
    /// Linear memory one request may use, in MiB.
    #[arg(long, default_value_t = 256)]
    max_memory_mib: usize,
    /// Seconds one request's guest may run.
    #[arg(long, default_value_t = 60)]
    request_timeout_secs: u64,
    /// Seconds in-flight requests get to finish on SIGINT/SIGTERM.
    #[arg(long, default_value_t = 30)]
    shutdown_timeout_secs: u64,
    /// Guest instances alive at once; further requests wait for a free one.
    #[arg(long, default_value_t = 256)]
    max_instances: u32,
    /// Seconds a client has to send a request's headers (also how long an idle keep-alive
    /// connection stays open); the connection is closed after that.
    #[arg(long, default_value_t = 10)]
    header_timeout_secs: u64,
    /// Seconds without request-body bytes before the request is answered `408`.
    #[arg(long, default_value_t = 10)]
    body_idle_timeout_secs: u64,
    /// How SQLite files (key-value `spin` stores, SQLite databases) are opened: `tuned` (WAL,
    /// synchronous=NORMAL) or `spin` (Spin's exact settings: no pragmas, rollback journal,
    /// synchronous=FULL).
    #[arg(long = "sqlite-mode", value_enum, default_value_t = sqlite_pool::SqliteMode::Tuned)]
    sqlite_mode: sqlite_pool::SqliteMode,
    /// Whose meaning of a PostgreSQL URL's `sslmode` to follow: `libpq` (prefer/require encrypt
    /// without verifying; verify-ca/verify-full and sslrootcert verify) or `spin` (Spin 4's:
    /// every TLS connection verified against the system CAs; verify-* and sslrootcert rejected).
    #[arg(long = "postgres-tls", value_enum, default_value_t = pg_tls::TlsPolicy::Libpq)]
    postgres_tls: pg_tls::TlsPolicy,
    /// How PostgreSQL statements are sent: `cached` (each distinct statement prepared once per
    /// pooled connection and reused; edge-host only) or `spin` (Spin 4.0.2's way: prepared anew
    /// on every call, so the server parses and plans it every time). A fidelity switch for
    /// benchmarks: `spin` shows what a component costs the database on Spin.
    #[arg(long = "postgres-statements", value_enum, default_value_t = postgres::Statements::Cached)]
    postgres_statements: postgres::Statements,
    /// Connections that may be sending a request body at once (they hold no instance slot);
    /// a request beyond that gets `503` with `Retry-After` at once.
    #[arg(long, default_value_t = 2048)]
    max_pending_connections: usize,
}

fn main() {
    // wasmtime builds an error value, backtrace included, while tearing down every request's
    // store; with RUST_BACKTRACE=1 inherited from a shell, capturing it cost about 8 % of a
    // request's CPU. Panics still print backtraces; RUST_LIB_BACKTRACE=1 brings them back on
    // errors too.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: nothing else runs yet (no threads, no runtime), so nothing reads the environment.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(args) => up(args),
        Command::Build { from } => manifest::App::load(&from).and_then(|app| build(&app)),
    };
    if let Err(e) = result {
        eprintln!("Error: {e:#}");
        std::process::exit(1);
    }
}

fn up(args: UpArgs) -> Result<()> {
    let app = manifest::App::load(&args.from)?;
    if args.build {
        build(&app)?;
    }
    sqlite_pool::set_mode(args.sqlite_mode);
    pg_tls::set_policy(args.postgres_tls);
    postgres::set_statements(args.postgres_statements);
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    let config = runtime_config::RuntimeConfig::load(&runtime_config::Inputs {
        file: args.runtime_config_file.as_deref(),
        app_dir: &app.dir,
        state_dir: args.state_dir.as_deref(),
        cwd: &cwd,
    })?;
    config.log_locations();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let engine_opts = app::EngineOptions {
            max_memory_bytes: args.max_memory_mib * 1024 * 1024,
            max_instances: args.max_instances,
        };
        let loaded =
            tokio::task::block_in_place(|| app::AppRuntime::load(&app, &config, &engine_opts))?;
        start_epoch_ticker(loaded.engine.clone());
        let listener = server::bind(args.listen).await?;
        let local = listener.local_addr()?;
        // Handlers go in before the banner: a SIGTERM sent as soon as "Serving" appears must
        // already mean a graceful stop, not the default (fatal) action.
        let shutdown = shutdown_signal()?;
        print_banner(&loaded, local);
        let limits = server::Limits {
            max_memory_bytes: engine_opts.max_memory_bytes,
            request_timeout: Duration::from_secs(args.request_timeout_secs),
            shutdown_timeout: Duration::from_secs(args.shutdown_timeout_secs),
            max_instances: args.max_instances,
            header_timeout: Duration::from_secs(args.header_timeout_secs.max(1)),
            body_idle_timeout: Duration::from_secs(args.body_idle_timeout_secs.max(1)),
            max_pending_connections: args.max_pending_connections.max(1),
        };
        let server = Arc::new(server::Server::new(loaded, limits, local));
        server.serve(listener, shutdown).await
    })
}

fn print_banner(app: &app::AppRuntime, local: SocketAddr) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "Serving http://{local}");
    let _ = writeln!(out, "Available Routes:");
    for (route, id) in &app.routes {
        let (path, wildcard) = match route.strip_suffix("/...") {
            Some(p) => (p, " (wildcard)"),
            None => (route.as_str(), ""),
        };
        let _ = writeln!(out, "  {id}: http://{local}{path}{wildcard}");
    }
    let _ = out.flush();
}

fn start_epoch_ticker(engine: wasmtime::Engine) {
    std::thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || {
            loop {
                std::thread::sleep(server::EPOCH_TICK);
                engine.increment_epoch();
            }
        })
        .expect("spawn epoch ticker");
}

/// Installs the SIGINT/SIGTERM handlers now and returns a future that resolves on either.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt()).context("cannot install SIGINT handler")?;
    let mut term = signal(SignalKind::terminate()).context("cannot install SIGTERM handler")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}

/// Runs every component's `[component.X.build] command` in the manifest's directory.
fn build(app: &manifest::App) -> Result<()> {
    for (id, component) in &app.manifest.component {
        let Some(b) = &component.build else {
            continue;
        };
        let dir = match &b.workdir {
            Some(w) => app.dir.join(w),
            None => app.dir.clone(),
        };
        for command in b.command.commands() {
            eprintln!("Building component {id} with `{command}`");
            let status = std::process::Command::new("sh")
                .arg("-c")
                .arg(command)
                .current_dir(if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    &dir
                })
                .status()
                .with_context(|| format!("cannot run build command of `{id}`"))?;
            if !status.success() {
                bail!("build command of component `{id}` failed ({status})");
            }
        }
    }
    Ok(())
}
