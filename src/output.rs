//! What the command line prints: logs and warnings (one line each), the
//! unpack progress bar, the install summary, and error chains.

use std::fmt;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use keel_installer::{InstallReport, NameVersion, Reporter, UninstallReport};
use keel_wheel::{PackageName, Version};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Whether keel colors its own `error:` and `warning:` prefixes: `--color
/// always`, or `auto` on a terminal when NO_COLOR is unset or empty
/// (<https://no-color.org>).
pub fn colors_enabled(always: bool, never: bool) -> bool {
    if always || never {
        return always;
    }
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && std::io::stderr().is_terminal()
}

/// `prefix:` in the style of its level, when colors are on.
fn styled_prefix(prefix: &str, color: bool) -> String {
    use anstyle::{AnsiColor, Style};
    let style = match prefix {
        "error" => Style::new().bold().fg_color(Some(AnsiColor::Red.into())),
        "warning" => Style::new().bold().fg_color(Some(AnsiColor::Yellow.into())),
        _ => Style::new().bold(),
    };
    match color {
        true => format!("{style}{prefix}:{style:#}"),
        false => format!("{prefix}:"),
    }
}

/// Formats events as `warning: …`, `error: …`, or `level: …` with `-v`.
struct Lines {
    color: bool,
}

impl<S, N> FormatEvent<S, N> for Lines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let prefix = match *event.metadata().level() {
            Level::ERROR => "error",
            Level::WARN => "warning",
            Level::INFO => "info",
            Level::DEBUG => "debug",
            Level::TRACE => "trace",
        };
        write!(writer, "{} ", styled_prefix(prefix, self.color))?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

pub fn init_logging(quiet: bool, verbose: u8, color: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    // RUST_LOG, when set, refines the level for developers.
    let filter = tracing_subscriber::EnvFilter::try_from_env("KEEL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .event_format(Lines { color })
        .init();
}

/// Prints an error and each of its causes on its own line.
pub fn print_error(error: &dyn std::error::Error, color: bool) {
    eprintln!("{} {error}", styled_prefix("error", color));
    let mut source = error.source();
    while let Some(cause) = source {
        eprintln!("  Caused by: {cause}");
        source = cause.source();
    }
}

/// A progress bar for unpacking, shown only when stderr is a terminal.
pub struct UnpackProgress {
    bar: ProgressBar,
}

impl UnpackProgress {
    pub fn new(quiet: bool) -> Option<Arc<Self>> {
        if quiet || !std::io::stderr().is_terminal() {
            return None;
        }
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} Unpacking {pos}/{len} wheels {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Some(Arc::new(UnpackProgress { bar }))
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Reporter for UnpackProgress {
    fn on_unpack_start(&self, wheel: &str, _bytes: u64) {
        self.bar.inc_length(1);
        self.bar.set_message(wheel.to_string());
        self.bar.enable_steady_tick(Duration::from_millis(100));
    }

    fn on_unpack_complete(&self, _wheel: &str) {
        self.bar.inc(1);
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "package" } else { "packages" }
}

fn format_duration(elapsed: Duration) -> String {
    if elapsed.as_secs() >= 1 {
        format!("{:.2}s", elapsed.as_secs_f64())
    } else {
        format!("{}ms", elapsed.as_millis())
    }
}

/// The summary, in uv's shape: a line, then `- old` / `+ new` per package.
pub fn print_report(report: &InstallReport, elapsed: Duration) {
    if report.installed.is_empty() && report.removed.is_empty() {
        let n = report.unchanged.len();
        eprintln!(
            "Nothing to install: {n} {} already installed at the requested version (use --reinstall to install again)",
            plural(n)
        );
        return;
    }
    if !report.unpacked.is_empty() {
        let n = report.unpacked.len();
        eprintln!("Unpacked {n} {} into the cache", plural(n));
    }
    let n = report.installed.len();
    if report.removed.is_empty() {
        eprintln!(
            "Installed {n} {} in {}",
            plural(n),
            format_duration(elapsed)
        );
    } else {
        let r = report.removed.len();
        eprintln!(
            "Installed {n} {} and uninstalled {r} {} in {}",
            plural(n),
            plural(r),
            format_duration(elapsed)
        );
    }
    let mut lines: Vec<(&PackageName, char, &Version)> = Vec::new();
    for dist in &report.installed {
        match &dist.replaced {
            Some(old) if *old == dist.version => lines.push((&dist.name, '~', &dist.version)),
            Some(old) => {
                lines.push((&dist.name, '-', old));
                lines.push((&dist.name, '+', &dist.version));
            }
            None => lines.push((&dist.name, '+', &dist.version)),
        }
    }
    for removed in &report.removed {
        lines.push((&removed.name, '-', &removed.version));
    }
    lines.sort_by(|a, b| a.0.cmp(b.0));
    for (name, sign, version) in lines {
        eprintln!(" {sign} {name}=={version}");
    }
    if !report.unchanged.is_empty() {
        let already: Vec<String> = report
            .unchanged
            .iter()
            .map(|d| format!("{}=={}", d.name, d.version))
            .collect();
        eprintln!("Already installed: {}", already.join(", "));
    }
}

/// `Uninstalled N packages in T` and ` - name==version` per package.
pub fn print_uninstall(report: &UninstallReport, elapsed: Duration) {
    if report.removed.is_empty() {
        return;
    }
    let n = report.removed.len();
    eprintln!(
        "Uninstalled {n} {} in {}",
        plural(n),
        format_duration(elapsed)
    );
    let mut removed: Vec<&NameVersion> = report.removed.iter().collect();
    removed.sort_by(|a, b| a.name.cmp(&b.name).then(a.version.cmp(&b.version)));
    for dist in removed {
        eprintln!(" - {}=={}", dist.name, dist.version);
    }
}

/// The `keel verify` report: one line per distribution, details under the
/// damaged ones, then a summary line.
pub fn print_audit(
    report: &keel_audit::Report,
    interrupted: &[std::path::PathBuf],
    elapsed: Duration,
) {
    use keel_audit::Status;
    let mut files = 0;
    let mut damaged = 0;
    for dist in &report.distributions {
        files += dist.files;
        match dist.status {
            Status::Intact => println!(
                "{}=={}: intact ({} files)",
                dist.name, dist.version, dist.files
            ),
            Status::NoRecord => {
                damaged += 1;
                println!(
                    "{}=={}: no RECORD ({})",
                    dist.name,
                    dist.version,
                    dist.dist_info.display()
                );
            }
            Status::BadRecord => {
                damaged += 1;
                println!(
                    "{}=={}: unusable RECORD: {}",
                    dist.name,
                    dist.version,
                    dist.record_error.as_deref().unwrap_or("unreadable")
                );
            }
            Status::Damaged => {
                damaged += 1;
                println!("{}=={}: damaged", dist.name, dist.version);
                for path in &dist.missing {
                    println!("  missing: {path}");
                }
                for modified in &dist.modified {
                    println!("  modified ({}): {}", modified.reason, modified.path);
                }
                for path in &dist.unlisted {
                    println!("  unlisted: {}", path.display());
                }
            }
        }
    }
    for path in &report.unowned {
        println!("unowned: {} (no distribution lists it)", path.display());
    }
    for transaction in interrupted {
        println!(
            "interrupted transaction: {} (run `keel recover`)",
            transaction.display()
        );
    }
    let n = report.distributions.len();
    let verdict = if damaged == 0 && interrupted.is_empty() && report.unowned.is_empty() {
        "all intact".to_string()
    } else {
        let mut verdict = format!(
            "{damaged} damaged, {} interrupted transaction(s)",
            interrupted.len()
        );
        if !report.unowned.is_empty() {
            verdict.push_str(&format!(", {} unowned", report.unowned.len()));
        }
        verdict
    };
    eprintln!(
        "Verified {n} {} ({files} files) in {}: {verdict}",
        plural(n),
        format_duration(elapsed)
    );
}

/// `4,211`.
fn thousands(n: u64) -> String {
    indicatif::HumanCount(n).to_string()
}

/// `312.4 MiB` (binary units, one decimal).
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn files_and_bytes(removed: &keel_cache::Removed) -> String {
    let files = if removed.files == 1 { "file" } else { "files" };
    format!(
        "{} {files} ({})",
        thousands(removed.files),
        human_bytes(removed.bytes)
    )
}

/// `Removed 4,211 files (312.4 MiB) from …` (or `Would remove …`).
pub fn print_clean(
    report: &keel_cache::maintenance::CleanReport,
    root: &std::path::Path,
    names: &[String],
    dry_run: bool,
) {
    if !report.existed {
        eprintln!("No cache at {}: nothing to clean", root.display());
        return;
    }
    for name in &report.not_cached {
        eprintln!("No cache entries for {name}");
    }
    if !names.is_empty() && report.not_cached.len() == names.len() {
        return;
    }
    let verb = if dry_run { "Would remove" } else { "Removed" };
    let what = if names.is_empty() {
        format!("from {}", root.display())
    } else {
        format!("of {} from {}", names.join(", "), root.display())
    };
    eprintln!("{verb} {} {what}", files_and_bytes(&report.removed));
    if report.removed.unreadable_dirs > 0 {
        eprintln!(
            "{} directories could not be read without changing their permissions; their contents are not counted",
            report.removed.unreadable_dirs
        );
    }
}

fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// What `keel cache prune` removed, by kind, then the total.
pub fn print_prune(
    report: &keel_cache::maintenance::PruneReport,
    root: &std::path::Path,
    dry_run: bool,
) {
    if report.is_empty() {
        eprintln!("Nothing to prune in {}", root.display());
        return;
    }
    let mut kinds = Vec::new();
    let archives = report.unreferenced_archives.len();
    if archives > 0 {
        kinds.push(count(
            archives,
            "unreferenced archive",
            "unreferenced archives",
        ));
    }
    if !report.damaged_archives.is_empty() {
        kinds.push(count(
            report.damaged_archives.len(),
            "damaged archive",
            "damaged archives",
        ));
    }
    if !report.dangling_pointers.is_empty() {
        kinds.push(count(
            report.dangling_pointers.len(),
            "dangling pointer",
            "dangling pointers",
        ));
    }
    if report.unfinished_unpacks > 0 {
        kinds.push(count(
            report.unfinished_unpacks,
            "unfinished unpack",
            "unfinished unpacks",
        ));
    }
    if report.partial_files > 0 {
        kinds.push(count(
            report.partial_files,
            "unfinished write",
            "unfinished writes",
        ));
    }
    let verb = if dry_run { "Would remove" } else { "Removed" };
    eprintln!(
        "{verb} {}: {} from {}",
        kinds.join(", "),
        files_and_bytes(&report.removed),
        root.display()
    );
}

/// `keel cache verify`: a block per damaged archive, then a summary line.
pub fn print_cache_verify(report: &keel_cache::maintenance::VerifyReport, elapsed: Duration) {
    use keel_cache::maintenance::RepairAction;
    let mut files = 0u64;
    let mut bytes = 0u64;
    for archive in &report.archives {
        files += archive.files as u64;
        bytes += archive.bytes;
        if !archive.is_damaged() {
            continue;
        }
        let place = archive
            .archive
            .as_deref()
            .map(|id| format!(" (archive {id})"))
            .unwrap_or_default();
        println!("{}{place}: damaged", archive.wheel);
        if let Some(problem) = &archive.problem {
            println!("  {problem}");
        }
        for file in &archive.damaged {
            println!("  {}: {}", file.entry, file.reason);
        }
        match &archive.repair {
            Some(RepairAction::Reextracted { from, archive }) => {
                println!(
                    "  repaired: re-extracted from {} into {archive}",
                    from.display()
                )
            }
            Some(RepairAction::Forgotten { reason }) => {
                println!("  removed: {reason}; the next install of it unpacks it again")
            }
            Some(RepairAction::Failed { reason }) => println!("  repair failed: {reason}"),
            None => {}
        }
    }
    if !report.unreferenced.is_empty() {
        println!(
            "{} no pointer leads to ({}); `keel cache prune` removes them",
            count(report.unreferenced.len(), "archive", "archives"),
            report.unreferenced.join(", ")
        );
    }
    let restamped: usize = report.archives.iter().map(|a| a.restamped).sum();
    let damaged = report.damaged();
    let repaired = report
        .archives
        .iter()
        .filter(|a| a.is_damaged() && !a.needs_attention())
        .count();
    let mut verdict = if damaged == 0 {
        "all intact".to_string()
    } else if repaired == damaged {
        format!("{damaged} damaged, all repaired")
    } else if repaired > 0 {
        format!("{damaged} damaged, {repaired} repaired (run `keel cache verify --repair`)")
    } else {
        format!("{damaged} damaged (run `keel cache verify --repair`)")
    };
    if restamped > 0 {
        verdict.push_str(&format!(
            "; {} changed on disk but not in content",
            count(restamped, "file", "files")
        ));
    }
    eprintln!(
        "Checked {} ({} files, {}) in {} in {}: {verdict}",
        count(report.archives.len(), "archive", "archives"),
        thousands(files),
        human_bytes(bytes),
        report.cache.display(),
        format_duration(elapsed)
    );
}

/// `keel cache size`: `312.4 MiB (4,211 files) in …`.
/// `keel cache add`: how many wheels the cache now holds, and how many of
/// them were unpacked now.
pub fn print_added(
    added: &[(String, keel_cache::ArchiveOrigin)],
    root: &std::path::Path,
    elapsed: Duration,
) {
    let reused = added
        .iter()
        .filter(|(_, origin)| *origin == keel_cache::ArchiveOrigin::Reused)
        .count();
    eprintln!(
        "Added {} {} to {} in {} ({} unpacked, {} already there)",
        added.len(),
        if added.len() == 1 { "wheel" } else { "wheels" },
        root.display(),
        format_duration(elapsed),
        added.len() - reused,
        reused
    );
}

pub fn print_size(size: &keel_cache::Removed, root: &std::path::Path) {
    println!(
        "{} ({} files) in {}",
        human_bytes(size.bytes),
        thousands(size.files),
        root.display()
    );
}

/// `keel verify --json`: the audit, and the transactions a killed keel
/// left behind.
#[derive(serde::Serialize)]
pub struct VerifyJson<'a> {
    pub environment: &'a std::path::Path,
    pub intact: bool,
    pub interrupted_transactions: &'a [std::path::PathBuf],
    pub distributions: &'a [keel_audit::DistributionReport],
    pub unowned: &'a [std::path::PathBuf],
}

/// `keel cache verify --json`.
#[derive(serde::Serialize)]
pub struct CacheVerifyJson<'a> {
    pub cache: &'a std::path::Path,
    pub healthy: bool,
    pub archives: &'a [keel_cache::maintenance::ArchiveReport],
    pub unreferenced: &'a [String],
    pub downloads: &'a crate::downloads::DownloadsReport,
}

impl<'a> CacheVerifyJson<'a> {
    pub fn new(
        report: &'a keel_cache::maintenance::VerifyReport,
        downloads: &'a crate::downloads::DownloadsReport,
        healthy: bool,
    ) -> Self {
        CacheVerifyJson {
            cache: &report.cache,
            healthy,
            archives: &report.archives,
            unreferenced: &report.unreferenced,
            downloads,
        }
    }
}

/// `Removed 3 downloads` after `keel cache clean NAME`.
pub fn print_downloads_removed(count: usize, dry_run: bool) {
    if count > 0 {
        let verb = if dry_run { "Would remove" } else { "Removed" };
        eprintln!(
            "{verb} {count} downloaded wheel{}",
            if count == 1 { "" } else { "s" }
        );
    }
}

/// The damaged downloads `keel cache verify` found, then a summary line.
pub fn print_downloads_verify(report: &crate::downloads::DownloadsReport) {
    for damaged in &report.damaged {
        println!("{}: damaged download", damaged.path.display());
        println!("  {}", damaged.reason);
        if damaged.removed {
            println!("  removed: the next install fetches it again");
        }
    }
    if report.checked > 0 {
        let verdict = match report.damaged.len() {
            0 => "all intact".to_string(),
            n if report.damaged.iter().all(|d| d.removed) => format!("{n} damaged, removed"),
            n => format!("{n} damaged (run `keel cache verify --repair`)"),
        };
        eprintln!(
            "Checked {}: {verdict}",
            count(report.checked, "download", "downloads")
        );
    }
}

/// Prints a report as indented JSON on stdout.
pub fn print_json(value: &impl serde::Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("error: cannot write the JSON report: {e}"),
    }
}
