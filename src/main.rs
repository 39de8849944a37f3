//! The flowprobe binary: parse the command line, set up logging, run, map to an exit code.

use clap::Parser;
use flowprobe::cli::{self, Cli, ColorChoice, LogFormat};
use tracing_subscriber::EnvFilter;

/// Crates whose debug logs could show a credential (see `init_tracing`).
const QUIET_DEPENDENCIES: &[&str] = &[
    "hyper",
    "hyper_util",
    "h2",
    "reqwest",
    "rustls",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http_client",
    "aws_sigv4",
    "aws_sdk_s3",
    "aws_config",
    "redis",
    "openidconnect",
    "oauth2",
    "axum",
    "tower",
];

fn init_tracing(verbose: u8, format: LogFormat, color: ColorChoice) {
    let default = match verbose {
        0 => "error",
        1 => "flowprobe=info",
        _ => "flowprobe=debug",
    };
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Dependencies log requests (headers, signatures, replies) at debug and trace without
    // flowprobe's redaction: they stay at info whatever RUST_LOG asks for.
    for target in QUIET_DEPENDENCIES {
        if let Ok(d) = format!("{target}=info").parse() {
            filter = filter.add_directive(d);
        }
    }
    let ansi = color.enabled(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// A panic is a bug; the runner turns it into a failed run (reason `internal`) whose message is
/// redacted. The default hook would print the payload unredacted, so this one prints only where.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("flowprobe: internal error (a bug) at {at}; the run it hit is reported as failed with reason `internal`");
    }));
}

fn main() -> anyhow::Result<()> {
    install_panic_hook();
    let args = Cli::parse();
    // A daemon logs each run (info) by default; one-shot commands stay quiet.
    let serve = matches!(args.command, cli::Command::Serve(_));
    init_tracing(
        args.verbose.max(u8::from(serve)),
        args.log_format,
        args.color,
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let code = runtime.block_on(cli::dispatch(args))?;
    // Exit without waiting for in-flight connections to close.
    runtime.shutdown_background();
    std::process::exit(code);
}
