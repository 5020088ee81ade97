//! The `keel` command line: install wheels into a virtual environment
//! through keel's verified, self-healing archive cache.

mod downloads;
mod memory;
mod output;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use keel_installer::{InstallOptions, LinkMode, Verification};

/// Errors of the command line itself; library errors are wrapped as they are.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Install(#[from] keel_installer::Error),
    #[error(transparent)]
    Cache(#[from] keel_cache::Error),
    #[error(transparent)]
    Audit(#[from] keel_audit::Error),
    #[error(transparent)]
    Environment(#[from] keel_venv::Error),
    #[error(transparent)]
    Download(#[from] keel_download::Error),
    #[error(
        "no virtual environment given: pass --venv, activate one (VIRTUAL_ENV), or create `.venv` here"
    )]
    NoEnvironment,
    #[error("cannot write the output")]
    Output(#[source] std::io::Error),
}

#[derive(Parser)]
#[command(
    name = "keel",
    version,
    about = "Install Python wheels, verified against RECORD, all or nothing",
    long_about = "Install Python wheels, verified against RECORD, all or nothing.\n\n\
        Every file an install puts in place matches its wheel's RECORD (hash and size); a damaged \
        cache is re-extracted from the wheel, never installed; every command that changes an \
        environment is one transaction that a kill at any instant cannot leave half done.",
    after_help = "Example:\n  keel install --venv .venv dist/*.whl\n  keel sync -r pylock.toml"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Options every command takes (uv's conventions).
#[derive(clap::Args)]
struct GlobalArgs {
    /// Print only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// More output (-v: what keel does; -vv: debug detail).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// The cache directory [default: $XDG_CACHE_HOME/keel, else ~/.cache/keel].
    #[arg(long, value_name = "DIR", global = true, env = "KEEL_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// When to color output (NO_COLOR in the environment means never, unless
    /// `always` is asked for).
    #[arg(
        long,
        value_enum,
        global = true,
        default_value = "auto",
        value_name = "WHEN"
    )]
    color: ColorArg,
}

impl GlobalArgs {
    /// The cache directory: `--cache-dir` (or KEEL_CACHE_DIR), else the
    /// default under XDG_CACHE_HOME or HOME.
    fn cache_dir(&self) -> Result<PathBuf, CliError> {
        match &self.cache_dir {
            Some(dir) => Ok(dir.clone()),
            None => Ok(keel_cache::Cache::default_root()?),
        }
    }
}

/// `--color`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ColorArg {
    /// Color on a terminal, unless NO_COLOR is set.
    Auto,
    /// Always color.
    Always,
    /// Never color.
    Never,
}

/// The virtual environment a command works on.
#[derive(clap::Args)]
struct VenvArg {
    /// The virtual environment [default: the active one, else ./.venv].
    #[arg(long, value_name = "DIR", env = "VIRTUAL_ENV")]
    venv: Option<PathBuf>,
}

impl VenvArg {
    /// `--venv` (or VIRTUAL_ENV), else `./.venv` when there is one.
    fn resolve(&self) -> Result<PathBuf, CliError> {
        if let Some(venv) = self.venv.as_ref().filter(|v| !v.as_os_str().is_empty()) {
            return Ok(venv.clone());
        }
        let local = PathBuf::from(".venv");
        if local.join("pyvenv.cfg").exists() {
            return Ok(local);
        }
        Err(CliError::NoEnvironment)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Install wheels or a lock into a virtual environment: verified, all or nothing.
    #[command(
        after_help = "Example:\n  keel install --venv .venv dist/*.whl\n  keel install -r pylock.toml"
    )]
    Install(InstallArgs),
    /// Make the environment hold exactly these wheels (or this lock): one transaction.
    #[command(after_help = "Example:\n  keel sync -r pylock.toml")]
    Sync(InstallArgs),
    /// Remove installed distributions by their RECORD, all or nothing.
    #[command(after_help = "Example:\n  keel uninstall requests urllib3")]
    Uninstall(UninstallArgs),
    /// Finish or undo a transaction a killed keel left: the environment ends as before or after.
    #[command(after_help = "Example:\n  keel recover --venv .venv")]
    Recover {
        #[command(flatten)]
        venv: VenvArg,
    },
    /// Check every installed file against its RECORD; exit 0 only when all is intact.
    #[command(after_help = "Example:\n  keel verify --venv .venv --json")]
    Verify {
        #[command(flatten)]
        venv: VenvArg,
        /// Print a machine-readable JSON report on stdout.
        #[arg(long)]
        json: bool,
        /// Only these distributions [default: all].
        #[arg(value_name = "NAME")]
        names: Vec<String>,
    },
    /// Manage keel's cache: every archive proven against RECORD, cleanable whatever its modes.
    #[command(after_help = "Example:\n  keel cache verify --repair")]
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
    /// Print a shell's completion script for keel (bash, zsh, fish, elvish, powershell).
    #[command(
        after_help = "Example:\n  keel generate-shell-completion bash > ~/.local/share/bash-completion/completions/keel"
    )]
    GenerateShellCompletion {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print keel's man page (roff) on stdout.
    #[command(hide = true)]
    GenerateManPage,
}

#[derive(Subcommand)]
enum CacheCommand {
    /// Print the cache directory.
    #[command(after_help = "Example:\n  keel cache dir")]
    Dir,
    /// Remove the whole cache, or the archives and pointers of the
    /// distributions named, whatever permissions a failed build left behind.
    /// Waits for running installs.
    #[command(after_help = "Example:\n  keel cache clean --dry-run\n  keel cache clean numpy")]
    Clean {
        /// Only these distributions (any spelling) [default: everything].
        #[arg(value_name = "NAME")]
        names: Vec<String>,
        /// Say what would be removed; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove what nothing refers to: archives without pointers, pointers
    /// without archives, damaged archives, unfinished unpacks. Waits for
    /// running installs.
    #[command(after_help = "Example:\n  keel cache prune")]
    Prune {
        /// Say what would be removed; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Hash every file of every cached archive against its wheel's RECORD;
    /// exit 0 only when every archive is intact (or was repaired).
    #[command(after_help = "Example:\n  keel cache verify --repair")]
    Verify {
        /// Re-extract damaged archives from their wheels (where the wheel is
        /// still where it was unpacked from; otherwise forget the archive).
        #[arg(long)]
        repair: bool,
        /// Print a machine-readable JSON report on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Unpack wheels into the cache without installing them (to seed a
    /// cache that others use with --shared-cache): each verified against
    /// its RECORD, found later by its path or by its content, and copied
    /// into the download cache so that a lock naming it installs offline.
    #[command(after_help = "Example:\n  keel cache add --cache-dir /srv/keel-cache dist/*.whl")]
    Add {
        /// Wheel files (`.whl`).
        #[arg(required = true, value_name = "WHEEL")]
        wheels: Vec<PathBuf>,
    },
    /// Print how much the cache holds.
    #[command(after_help = "Example:\n  keel cache size")]
    Size,
}

#[derive(clap::Args)]
struct InstallArgs {
    /// Wheel files (`.whl`) to install.
    #[arg(required_unless_present = "requirement", value_name = "WHEEL")]
    wheels: Vec<PathBuf>,
    /// Install what a lock pins: `pylock.toml` or `pylock.<name>.toml`
    /// (PEP 751), or a hash-pinned requirements file; fetched, verified and
    /// installed as one transaction.
    #[arg(short = 'r', long, value_name = "FILE", conflicts_with = "wheels")]
    requirement: Option<PathBuf>,
    /// An extra of the lock to install (repeatable).
    #[arg(long = "extra", value_name = "NAME", requires = "requirement")]
    extras: Vec<String>,
    /// A dependency group of the lock to install instead of its default
    /// groups (repeatable).
    #[arg(long = "group", value_name = "NAME", requires = "requirement")]
    groups: Vec<String>,
    /// The package index (simple API) of a requirements file's packages,
    /// before the file's own `--index-url`. keel has no default index.
    #[arg(long, short = 'i', value_name = "URL", requires = "requirement")]
    index_url: Vec<url::Url>,
    /// Never use the network: install from the download cache, or name what
    /// is missing.
    #[arg(
        long,
        env = "KEEL_OFFLINE",
        value_parser = clap::builder::BoolishValueParser::new(),
        num_args = 0,
        default_missing_value = "true"
    )]
    offline: bool,
    /// Do not check that every dependency of a requirements file is in it
    /// or installed.
    #[arg(long, requires = "requirement")]
    no_deps: bool,
    #[command(flatten)]
    venv: VenvArg,
    /// A read-only cache consulted before the cache directory (repeatable;
    /// in KEEL_SHARED_CACHE, separated by `:`): seeded once, shared by a
    /// team or a fleet. keel never writes to it; what is damaged or missing
    /// there is unpacked into the writable cache.
    #[arg(
        long = "shared-cache",
        value_name = "DIR",
        env = "KEEL_SHARED_CACHE",
        value_delimiter = ':'
    )]
    shared_caches: Vec<PathBuf>,
    /// Use no writable cache: extract (and verify) every wheel for this
    /// install only. Shared caches are still read.
    #[arg(
        long,
        env = "KEEL_NO_CACHE",
        value_parser = clap::builder::BoolishValueParser::new(),
        num_args = 0,
        default_missing_value = "true"
    )]
    no_cache: bool,
    /// How to put cached files into the environment; clone falls back to
    /// hardlink, then copy.
    #[arg(long, value_enum, default_value = "clone", env = "KEEL_LINK_MODE")]
    link_mode: LinkModeArg,
    /// Hash every byte of every installed file instead of trusting stamps.
    #[arg(long)]
    verify: bool,
    /// Install again even when the same version is installed.
    #[arg(long)]
    reinstall: bool,
    /// Overwrite files that another installed distribution owns. (Never
    /// installs a wheel the environment's Python cannot run.)
    #[arg(long)]
    force: bool,
    /// Install a wheel whose Requires-Python excludes the environment's
    /// Python, with a warning (its tags are still checked).
    #[arg(long)]
    ignore_requires_python: bool,
    /// Refuse a wheel holding a file larger than this (bytes, or with a
    /// K, M, G or T suffix: powers of 1024).
    #[arg(long, value_name = "SIZE", default_value = "4G", value_parser = parse_size)]
    max_file_size: u64,
    /// Refuse a wheel whose files add up to more than this.
    #[arg(long, value_name = "SIZE", default_value = "16G", value_parser = parse_size)]
    max_wheel_size: u64,
    /// Compile the bytecode of every installed module inside the
    /// transaction, with the environment's Python (uv's option).
    #[arg(
        long,
        env = "KEEL_COMPILE_BYTECODE",
        value_parser = clap::builder::BoolishValueParser::new(),
        num_args = 0,
        default_missing_value = "true"
    )]
    compile_bytecode: bool,
    /// Do not compile bytecode (the default; overrides KEEL_COMPILE_BYTECODE).
    #[arg(long)]
    no_compile_bytecode: bool,
    /// The limit, in seconds, on a bytecode worker's start and on each
    /// file; 0 for none.
    #[arg(
        long,
        value_name = "SECONDS",
        env = "KEEL_COMPILE_BYTECODE_TIMEOUT",
        default_value_t = keel_installer::DEFAULT_COMPILE_TIMEOUT.as_secs()
    )]
    compile_bytecode_timeout: u64,
    /// Refuse a file over 1 MiB compressed more than N:1 (a zip bomb).
    #[arg(long, value_name = "N", default_value_t = 250)]
    max_compression_ratio: u64,
}

/// `4096`, `512K`, `4G`: a size in bytes, suffixes in powers of 1024.
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, shift) = match text.char_indices().last() {
        Some((at, unit)) if unit.is_ascii_alphabetic() => {
            let shift = match unit.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(format!("unknown unit `{unit}` (use K, M, G or T)")),
            };
            (&text[..at], shift)
        }
        _ => (text, 0),
    };
    let number: u64 = digits
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a size such as 4096, 512M or 4G"))?;
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("`{text}` is too large"))
}

#[derive(clap::Args)]
struct UninstallArgs {
    /// Distribution names (any spelling: `Django`, `typing_extensions`).
    #[arg(required = true, value_name = "NAME")]
    names: Vec<String>,
    #[command(flatten)]
    venv: VenvArg,
}

#[derive(Clone, Copy, ValueEnum)]
enum LinkModeArg {
    Clone,
    Hardlink,
    Copy,
    Symlink,
}

impl From<LinkModeArg> for LinkMode {
    fn from(mode: LinkModeArg) -> Self {
        match mode {
            LinkModeArg::Clone => LinkMode::Clone,
            LinkModeArg::Hardlink => LinkMode::Hardlink,
            LinkModeArg::Copy => LinkMode::Copy,
            LinkModeArg::Symlink => LinkMode::Symlink,
        }
    }
}

fn main() -> ExitCode {
    memory::tune_allocator();
    keel_installer::enable_fault_injection();
    let cli = Cli::parse();
    let color = output::colors_enabled(
        cli.global.color == ColorArg::Always,
        cli.global.color == ColorArg::Never,
    );
    output::init_logging(cli.global.quiet, cli.global.verbose, color);
    match run(&cli) {
        Ok(code) => code,
        Err(error) => {
            output::print_error(&error, color);
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<ExitCode, CliError> {
    let quiet = cli.global.quiet;
    match &cli.command {
        Command::Verify { venv, json, names } => verify(&venv.resolve()?, names, *json, quiet),
        Command::Cache { command } => cache(command, &cli.global.cache_dir()?, quiet),
        Command::GenerateShellCompletion { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "keel", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::GenerateManPage => {
            let page = clap_mangen::Man::new(Cli::command());
            page.render(&mut std::io::stdout())
                .map_err(CliError::Output)?;
            Ok(ExitCode::SUCCESS)
        }
        _ => run_changing(cli).map(|()| ExitCode::SUCCESS),
    }
}

fn cache(command: &CacheCommand, root: &Path, quiet: bool) -> Result<ExitCode, CliError> {
    let start = Instant::now();
    let cache = keel_cache::Cache::at(root)?;
    match command {
        CacheCommand::Dir => println!("{}", root.display()),
        CacheCommand::Clean { names, dry_run } => {
            let report = cache.clean(names, *dry_run)?;
            let downloads = match names.is_empty() {
                true => 0,
                false => downloads::clean_named(cache.root(), names, *dry_run)?,
            };
            if !quiet {
                output::print_clean(&report, cache.root(), names, *dry_run);
                output::print_downloads_removed(downloads, *dry_run);
            }
        }
        CacheCommand::Prune { dry_run } => {
            let report = cache.prune(*dry_run)?;
            let partial = downloads::prune(cache.root(), *dry_run)?;
            if !quiet {
                output::print_prune(&report, cache.root(), *dry_run);
                if partial > 0 {
                    eprintln!("Removed {partial} unfinished downloads older than an hour");
                }
            }
        }
        CacheCommand::Verify { repair, json } => {
            return verify_cache(&cache, *repair, *json, quiet, start);
        }
        CacheCommand::Add { wheels } => {
            let cache = cache.with_destination_check(keel_venv::reserved_destination);
            let added = downloads::add(&cache, wheels, quiet)?;
            if !quiet {
                output::print_added(&added, cache.root(), start.elapsed());
            }
        }
        CacheCommand::Size => output::print_size(&cache.size(), cache.root()),
    }
    Ok(ExitCode::SUCCESS)
}

/// `keel cache verify [--repair] [--json]`: archives and downloads.
fn verify_cache(
    cache: &keel_cache::Cache,
    repair: bool,
    json: bool,
    quiet: bool,
    start: Instant,
) -> Result<ExitCode, CliError> {
    let report = cache.verify(repair)?;
    let downloads = downloads::verify(cache.root(), repair)?;
    let healthy = report.is_healthy() && (downloads.damaged.is_empty() || repair);
    if json {
        output::print_json(&output::CacheVerifyJson::new(&report, &downloads, healthy));
    } else if !quiet || !healthy {
        output::print_cache_verify(&report, start.elapsed());
        output::print_downloads_verify(&downloads);
    }
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn verify(
    venv: &std::path::Path,
    names: &[String],
    json: bool,
    quiet: bool,
) -> Result<ExitCode, CliError> {
    let start = Instant::now();
    let env = keel_venv::Environment::open(venv)?;
    // A transaction in progress is not an interrupted one: wait for it.
    let _lock = keel_installer::EnvironmentLock::wait_shared(&env)?;
    let report = keel_audit::audit(&env, names)?;
    let interrupted = keel_installer::interrupted_transactions(venv)?;
    let intact = report.is_intact() && interrupted.is_empty();
    if json {
        output::print_json(&output::VerifyJson {
            environment: &report.environment,
            intact,
            interrupted_transactions: &interrupted,
            distributions: &report.distributions,
            unowned: &report.unowned,
        });
    } else if !quiet || !intact {
        output::print_audit(&report, &interrupted, start.elapsed());
    }
    Ok(if intact {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn run_changing(cli: &Cli) -> Result<(), CliError> {
    let quiet = cli.global.quiet;
    match &cli.command {
        Command::Install(args) => install(args, &cli.global, false),
        Command::Sync(args) => install(args, &cli.global, true),
        Command::Uninstall(args) => uninstall(args, quiet),
        Command::Recover { venv } => {
            let venv = venv.resolve()?;
            let recovered = keel_installer::recover(&venv)?;
            if recovered.is_empty() && !quiet {
                eprintln!("Nothing to recover in {}", venv.display());
            }
            Ok(())
        }
        Command::Verify { .. }
        | Command::Cache { .. }
        | Command::GenerateShellCompletion { .. }
        | Command::GenerateManPage => Ok(()),
    }
}

/// A flag set by SIGINT and SIGTERM instead of dying: staging stops at the
/// next check and cleans up; a started commit finishes first.
fn interrupt_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal exits at once (130); the journal makes even that
        // safe: the next keel command rolls the transaction back or forward.
        let second =
            signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&flag));
        if let Err(e) = second.and_then(|_| signal_hook::flag::register(signal, Arc::clone(&flag)))
        {
            tracing::debug!("cannot handle signal {signal}: {e}");
        }
    }
    flag
}

fn uninstall(args: &UninstallArgs, quiet: bool) -> Result<(), CliError> {
    let start = Instant::now();
    let venv = args.venv.resolve()?;
    let report = keel_installer::uninstall(&venv, &args.names)?;
    for name in &report.not_installed {
        tracing::warn!("skipping {name}: it is not installed");
    }
    if !quiet {
        output::print_uninstall(&report, start.elapsed());
    }
    Ok(())
}

fn install(args: &InstallArgs, global: &GlobalArgs, exact: bool) -> Result<(), CliError> {
    let start = Instant::now();
    let quiet = global.quiet;
    let mut options = InstallOptions::new(args.venv.resolve()?, global.cache_dir()?);
    options.shared_caches = args.shared_caches.clone();
    options.no_cache = args.no_cache;
    options.link_mode = args.link_mode.into();
    options.verification = if args.verify {
        Verification::Full
    } else {
        Verification::Stamps
    };
    options.reinstall = args.reinstall;
    options.force = args.force;
    options.ignore_requires_python = args.ignore_requires_python;
    options.exact = exact;
    options.limits = keel_wheel::Limits {
        max_file_size: args.max_file_size,
        max_total_size: args.max_wheel_size,
        max_ratio: args.max_compression_ratio,
    };
    options.compile_bytecode = args.compile_bytecode && !args.no_compile_bytecode;
    options.compile_timeout = match args.compile_bytecode_timeout {
        0 => None,
        seconds => Some(std::time::Duration::from_secs(seconds)),
    };
    options.cancel = Some(interrupt_flag());
    let progress = output::UnpackProgress::new(quiet);
    options.reporter = progress.clone().map(|p| p as _);
    let report = match &args.requirement {
        Some(file) => {
            let request = keel_installer::LockedRequest {
                file: file.clone(),
                extras: args.extras.clone(),
                groups: (!args.groups.is_empty()).then(|| args.groups.clone()),
                index_urls: args.index_url.clone(),
                offline: args.offline,
                no_deps: args.no_deps,
            };
            keel_installer::install_locked(&request, &options)
        }
        None => keel_installer::install(&args.wheels, &options),
    };
    if let Some(progress) = progress {
        progress.finish();
    }
    let report = report?;
    if let Some(mode) = report.link_mode {
        tracing::info!(
            "{} files proven by a stamp that still held, {} by hashing; link mode {}",
            report.files_trusted,
            report.files_hashed,
            mode.name()
        );
    }
    if !quiet {
        output::print_report(&report, start.elapsed());
    }
    Ok(())
}
