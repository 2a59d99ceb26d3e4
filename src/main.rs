//! The wirelens command line: `run`, `replay`, `check`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use wirelens::config::Config;
use wirelens::output::Format;

/// mimalloc instead of glibc's malloc: the pipeline allocates a few small strings per
/// exchange (method, target, host, route, the record), and glibc's allocator was a sixth of
/// the agent's CPU under load (`perf`, nginx at saturation). Built without transparent huge
/// pages (Cargo.toml): with them, peak RSS rose by 15 MB and the kernel spent its time
/// zeroing 2 MiB pages.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "wirelens",
    version,
    about = "eBPF-based, protocol-aware L7 traffic observer"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Observe this host: one record per request/response exchange.
    Run {
        /// Configuration file (YAML); flags override it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Capture only this process id (repeatable).
        #[arg(long = "pid")]
        pids: Vec<u32>,
        /// Payload prefix copied per read/write call, bytes (1..=8192).
        #[arg(long)]
        capture_bytes: Option<u32>,
        /// Size of the kernel-to-user ring buffer, bytes (a power of two, a multiple of the
        /// page size) [default: 16777216].
        #[arg(long)]
        ring_buffer_bytes: Option<u64>,
        /// Output format.
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// Write records to this file instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Serve /metrics, /healthz and /readyz here [default: 127.0.0.1:9464].
        #[arg(long, value_name = "ADDR:PORT")]
        metrics_addr: Option<std::net::SocketAddr>,
    },
    /// Read pcap/pcapng files and print the same records, in capture order.
    Replay {
        #[arg(long, value_enum, default_value = "jsonl")]
        format: Format,
        #[arg(long)]
        output: Option<PathBuf>,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Say whether this kernel and these privileges can run the agent.
    Check,
    /// Attach empty programs to the same tracepoints until SIGINT (overhead benchmark floor).
    #[command(hide = true)]
    BenchFloor {
        /// Raw tracepoints on sys_enter/sys_exit instead, testing the syscall number.
        #[arg(long)]
        raw: bool,
    },
}

fn main() -> ExitCode {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WIRELENS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            config,
            pids,
            capture_bytes,
            ring_buffer_bytes,
            format,
            output,
            metrics_addr,
        } => run(
            config,
            pids,
            RunFlags {
                capture_bytes,
                ring_buffer_bytes,
                format,
                output,
                metrics_addr,
            },
        ),
        Command::Replay {
            format,
            output,
            files,
        } => wirelens::replay_cmd::replay(&files, format, output.as_deref()),
        Command::BenchFloor { raw } => wirelens::floor::run(raw),
        Command::Check => {
            return if wirelens::preflight::check() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wirelens: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `run` flags that override the configuration file.
struct RunFlags {
    capture_bytes: Option<u32>,
    ring_buffer_bytes: Option<u64>,
    format: Option<Format>,
    output: Option<PathBuf>,
    metrics_addr: Option<std::net::SocketAddr>,
}

fn run(config: Option<PathBuf>, pids: Vec<u32>, flags: RunFlags) -> anyhow::Result<()> {
    let RunFlags {
        capture_bytes,
        ring_buffer_bytes,
        format,
        output,
        metrics_addr,
    } = flags;
    let cli_pids = pids.clone();
    let mut cfg = match &config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let at_start = cfg.clone();
    if !pids.is_empty() {
        cfg.pids = pids;
    }
    // Reloads read the file again; the flags keep overriding it.
    let reload_path = config.clone();
    let load: wirelens::filter_ctl::Loader = Box::new(move || {
        let mut c = match &reload_path {
            Some(p) => Config::load(p).map_err(|e| e.to_string())?,
            None => Config::default(),
        };
        let later = at_start.start_only_changes(&c);
        if !later.is_empty() {
            tracing::warn!(
                keys = %later.join(", "),
                "changed in the configuration file since start: these keys take effect at the \
                 next start (a reload applies filters and pids)"
            );
        }
        if !cli_pids.is_empty() {
            c.pids = cli_pids.clone();
        }
        c.build().map(|s| s.policy).map_err(|e| e.to_string())
    });
    if let Some(n) = capture_bytes {
        cfg.capture_bytes = n;
    }
    if let Some(n) = ring_buffer_bytes {
        cfg.ring_buffer_bytes = n;
    }
    if let Some(f) = format {
        cfg.format = f;
    }
    if output.is_some() {
        cfg.output = output;
    }
    if metrics_addr.is_some() {
        cfg.metrics_addr = metrics_addr;
    }
    let settings = cfg.build()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(wirelens::run::run(settings, load, config))
}
