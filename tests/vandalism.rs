//! Guarantee 2, *self-healing cache*, against the damage real caches suffer:
//! `tmpwatch` and `systemd-tmpfiles` deleting files but keeping directories,
//! archives or pointers removed by hand, files truncated by a power cut,
//! replaced by directories, symlinks or named pipes, edited in place (also
//! through a hardlink from an environment) — and one thing that is *not*
//! damage: a cache restored from a backup, with new inodes.
//!
//! Every test warms a cache, vandalizes it the way real life does, installs
//! into a *fresh* environment and ends with an import, a console script and
//! the independent RECORD check. Where keel has to notice damage, the test
//! also asserts the one-line warning (naming the wheel file and the damaged
//! entry), that a fresh archive was unpacked beside the damaged one, and that
//! a later install reuses the repaired archive without a word.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, SystemTime};

use common::ageing::{backdate, sweep_files_older_than};
use common::time_limit::output_with_limit;
use common::*;
use keel_fixtures::bundled;

const HELLO: &str = "keel-demo-hello";
const MANY: &str = "keel-demo-many";
const DATA: &str = "keel-demo-data";
const LEGACY: &str = "keel-demo-legacy";
const NS_A: &str = "keel-demo-ns-a";
const NS_B: &str = "keel-demo-ns-b";

/// The six wheels of the multi-wheel scenario, with their normalized names.
const ALL_SIX: [(&str, &str); 6] = [
    (bundled::HELLO_V1, HELLO),
    (bundled::DATA, DATA),
    (bundled::MANY, MANY),
    (bundled::LEGACY, LEGACY),
    (bundled::NS_A, NS_A),
    (bundled::NS_B, NS_B),
];

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Installs `wheels` into a fresh environment `warm` so that the cache holds
/// one intact archive of each; asserts it went without a warning.
fn warm(sandbox: &Sandbox, wheels: &[&str], extra: &[&str]) -> PathBuf {
    let venv = sandbox.venv("warm");
    let output = sandbox.install_bundled(&venv, wheels, extra);
    assert_success_without_warnings(&output);
    venv
}

/// Asserts the install succeeded and warned exactly once per damaged wheel:
/// `expected` lists (wheel file name, text the reason must contain, e.g.
/// `keel_demo_hello/__init__.py: missing`). Returns each warning's reason
/// (the text in parentheses), in the order of `expected`.
#[track_caller]
fn assert_repairs(sandbox: &Sandbox, output: &Output, expected: &[(&str, &str)]) -> Vec<String> {
    assert_success(output);
    let all = stderr(output);
    let lines = warnings(output);
    assert_eq!(
        lines.len(),
        expected.len(),
        "expected exactly {} warning line(s), got:\n{all}",
        expected.len()
    );
    let mut reasons = Vec::new();
    for (wheel, detail) in expected {
        let prefix = format!("warning: the cached archive of {wheel} is damaged (");
        let suffix = format!(
            "); re-extracting it from {}",
            sandbox.wheel(wheel).display()
        );
        let matching: Vec<&String> = lines.iter().filter(|l| l.starts_with(&prefix)).collect();
        assert_eq!(
            matching.len(),
            1,
            "expected exactly one warning about {wheel}, got:\n{all}"
        );
        let line = matching[0];
        assert!(
            line.ends_with(&suffix),
            "the warning should end with `{suffix}`:\n{line}"
        );
        let reason = &line[prefix.len()..line.len() - suffix.len()];
        assert!(
            reason.contains(detail),
            "the warning should say `{detail}`:\n{line}"
        );
        reasons.push(reason.to_owned());
    }
    reasons
}

/// Installs HELLO_V1 into a fresh environment after its archive was
/// damaged: one warning saying `detail`, `archives` archive directories
/// afterwards, the package runs and verifies, and a later install reuses the
/// repaired archive silently.
#[track_caller]
fn assert_hello_healed(sandbox: &Sandbox, detail: &str, archives: usize) {
    let venv = sandbox.venv("venv");
    let output = sandbox.install_bundled(&venv, &[bundled::HELLO_V1], &[]);
    assert_repairs(sandbox, &output, &[(bundled::HELLO_V1, detail)]);
    assert_healed(
        sandbox,
        &venv,
        (bundled::HELLO_V1, HELLO),
        archives,
        assert_hello_runs,
    );
}

/// What follows the repair of the archive of `wheel` (a fixture file name,
/// of the distribution `dist`) in an install into `venv`: `archives` archive
/// directories of `dist` (a fresh one beside the damaged one), the
/// environment passes `runs` and verifies, and a later install reuses the
/// repaired archive silently and passes `runs` too.
#[track_caller]
fn assert_healed(
    sandbox: &Sandbox,
    venv: &Path,
    (wheel, dist): (&str, &str),
    archives: usize,
    runs: fn(&Path),
) {
    assert_eq!(
        sandbox.archives(dist).len(),
        archives,
        "a fresh archive is expected"
    );
    runs(venv);
    assert_environment_matches_record(venv);

    let later = assert_later_install_reuses(sandbox, "later", &[(wheel, dist)]);
    runs(&later);
    assert_environment_matches_record(&later);
}

/// Splits `entry: missing, and N more files` into the entry and N.
fn first_entry_and_more<'a>(reason: &'a str, damage: &str) -> (&'a str, usize) {
    let (first, rest) = reason
        .split_once(damage)
        .expect("the reason names the damage");
    let more = match rest.strip_prefix(", and ") {
        None => 0,
        Some(count) => count
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("a count of further damaged files"),
    };
    (first, more)
}

/// Installs `wheels` into a fresh environment `name` after a repair: no
/// warning, nothing unpacked, no new archive. Returns the environment.
#[track_caller]
fn assert_later_install_reuses(sandbox: &Sandbox, name: &str, wheels: &[(&str, &str)]) -> PathBuf {
    let before: Vec<usize> = wheels
        .iter()
        .map(|(_, dist)| sandbox.archives(dist).len())
        .collect();
    let venv = sandbox.venv(name);
    let files: Vec<&str> = wheels.iter().map(|(wheel, _)| *wheel).collect();
    let output = sandbox.install_bundled(&venv, &files, &[]);
    assert_success(&output);
    assert!(
        warnings(&output).is_empty(),
        "the repaired archive should be reused silently:\n{}",
        stderr(&output)
    );
    assert!(
        !stderr(&output).contains("Unpacked"),
        "the repaired archive should be reused, not unpacked again:\n{}",
        stderr(&output)
    );
    let after: Vec<usize> = wheels
        .iter()
        .map(|(_, dist)| sandbox.archives(dist).len())
        .collect();
    assert_eq!(before, after, "a later install created new archives");
    venv
}

/// Import and console script of keel-demo-hello 1.0.0.
#[track_caller]
fn assert_hello_runs(venv: &Path) {
    assert_eq!(
        python(
            venv,
            "import keel_demo_hello, keel_demo_hello.sub.util; print(keel_demo_hello.__version__)"
        )
        .trim(),
        "1.0.0"
    );
    assert_eq!(
        script(venv, "keel-hello", &[]).trim(),
        "hello from keel_demo_hello 1.0.0"
    );
}

/// Import of all 300 modules and console script of keel-demo-many.
#[track_caller]
fn assert_many_runs(venv: &Path) {
    assert_eq!(
        python(venv, "import keel_demo_many; print(keel_demo_many.count())").trim(),
        bundled::MANY_MODULE_COUNT.to_string()
    );
    assert_eq!(
        script(venv, "keel-many", &[]).trim(),
        bundled::MANY_MODULE_COUNT.to_string()
    );
}

/// Import and both `.data` scripts of keel-demo-data.
#[track_caller]
fn assert_data_runs(venv: &Path) {
    python(venv, "import keel_demo_data, keel_demo_data_extra");
    let tool = script(venv, "keel-data-tool", &[]);
    assert!(tool.starts_with("data tool ok"), "{tool}");
    assert_eq!(script(venv, "keel-data-sh", &[]).trim(), "sh tool ok");
}

/// Asserts an installed file is a regular file (not a symlink, not a
/// directory) with exactly `content`.
#[track_caller]
fn assert_regular_file_with(path: &Path, content: &[u8]) {
    let metadata = fs_err::symlink_metadata(path).expect("lstat installed file");
    assert!(
        metadata.file_type().is_file(),
        "{} should be a regular file, is {:?}",
        path.display(),
        metadata.file_type()
    );
    assert!(
        fs_err::read(path).expect("read installed file") == content,
        "{} does not hold the wheel's content",
        path.display()
    );
}

/// Every regular file under `root`, as paths relative to it, sorted.
fn files_under(root: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(root)
        .sort_by_file_name()
        .into_iter()
        .map(|e| e.expect("walk"))
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().strip_prefix(root).expect("prefix").to_path_buf())
        .collect()
}

/// Every directory under `root` (itself included).
fn dirs_under(root: &Path) -> BTreeSet<PathBuf> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| e.expect("walk"))
        .filter(|e| e.file_type().is_dir())
        .map(|e| e.path().to_path_buf())
        .collect()
}

/// Replaces an archive file by a symlink to `target`.
fn replace_by_symlink(file: &Path, target: &Path) {
    fs_err::remove_file(file).expect("remove archive file");
    fs_err::os::unix::fs::symlink(target, file).expect("symlink");
}

// ---------------------------------------------------------------------------
// tmpwatch / systemd-tmpfiles: files go, directories stay
// ---------------------------------------------------------------------------

#[test]
fn tmpwatch_deleting_most_files_of_an_archive_but_keeping_its_directories() {
    let sandbox = Sandbox::new();
    warm(&sandbox, &[bundled::MANY], &[]);
    let tree = sandbox.only_archive_tree(MANY);
    let dirs_before = dirs_under(&tree);

    // Delete nine files in ten (deterministically), keep every directory.
    let files = files_under(&tree);
    let deleted: BTreeSet<String> = files
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 10 != 0)
        .map(|(_, f)| {
            fs_err::remove_file(tree.join(f)).expect("delete");
            f.to_str().expect("utf-8").to_owned()
        })
        .collect();
    assert!(deleted.len() * 10 >= files.len() * 8, "{}", deleted.len());
    assert!(
        deleted
            .iter()
            .filter(|f| f.ends_with("__init__.py"))
            .count()
            >= 2,
        "the selection should hit some __init__.py files: {deleted:?}"
    );
    assert_eq!(dirs_under(&tree), dirs_before, "directories must stay");

    let venv = sandbox.venv("venv");
    let output = sandbox.install_bundled(&venv, &[bundled::MANY], &[]);
    let reasons = assert_repairs(&sandbox, &output, &[(bundled::MANY, ": missing")]);
    let (entry, more) = first_entry_and_more(&reasons[0], ": missing");
    assert_eq!(
        more + 1,
        deleted.len(),
        "the warning counts every deleted file"
    );
    assert!(
        deleted.contains(entry),
        "the warning names `{entry}`, which was not deleted"
    );
    assert_healed(&sandbox, &venv, (bundled::MANY, MANY), 2, assert_many_runs);
}

#[test]
fn tmpwatch_by_age_deleting_only_the_archive_files_not_touched_for_weeks() {
    let sandbox = Sandbox::new();
    warm(&sandbox, &[bundled::MANY], &[]);
    let tree = sandbox.only_archive_tree(MANY);

    // Files keel did not touch for a month: two subpackages, the package's
    // own __init__.py and METADATA. Everything else is fresh.
    let month_ago = SystemTime::now() - Duration::from_secs(30 * 24 * 3600);
    let mut aged = Vec::new();
    for file in files_under(&tree) {
        let name = file.to_str().expect("utf-8");
        if name.starts_with("keel_demo_many/alpha/")
            || name.starts_with("keel_demo_many/gamma/")
            || name == "keel_demo_many/__init__.py"
            || name.ends_with(".dist-info/METADATA")
        {
            backdate(&tree.join(&file), month_ago);
            aged.push(tree.join(&file));
        }
    }
    assert!(aged.len() > 100, "{}", aged.len());

    // `tmpwatch --mtime 10d <cache>`: over the whole cache.
    let ten_days_ago = SystemTime::now() - Duration::from_secs(10 * 24 * 3600);
    let deleted = sweep_files_older_than(&sandbox.cache, ten_days_ago);
    assert_eq!(deleted, {
        let mut aged = aged.clone();
        aged.sort();
        aged
    });
    assert!(sandbox.only_pointer(MANY).is_file());

    let venv = sandbox.venv("venv");
    let output = sandbox.install_bundled(&venv, &[bundled::MANY], &[]);
    let reasons = assert_repairs(&sandbox, &output, &[(bundled::MANY, ": missing")]);
    let (entry, more) = first_entry_and_more(&reasons[0], ": missing");
    assert_eq!(
        more + 1,
        aged.len(),
        "the warning counts every deleted file"
    );
    let entry = tree.join(entry);
    assert!(
        aged.contains(&entry),
        "the warning names `{}`, which was not deleted",
        entry.display()
    );
    assert_healed(&sandbox, &venv, (bundled::MANY, MANY), 2, assert_many_runs);
}

/// `systemd-tmpfiles` ageing out a whole cache in `/var/tmp`: every file
/// goes (pointers and manifests too), every directory stays. With its
/// pointer gone the wheel is simply not cached: keel unpacks it again, and
/// the skeleton it leaves behind must not confuse it.
#[test]
fn systemd_tmpfiles_deleting_every_file_of_the_cache_but_keeping_its_directories() {
    let sandbox = Sandbox::new();
    warm(&sandbox, &[bundled::HELLO_V1, bundled::MANY], &[]);
    let tomorrow = SystemTime::now() + Duration::from_secs(24 * 3600);
    let deleted = sweep_files_older_than(&sandbox.cache, tomorrow);
    assert!(deleted.len() > 300, "{}", deleted.len());
    assert!(files_under(&sandbox.cache).is_empty());
    assert_eq!(sandbox.archives(HELLO).len(), 1, "the skeleton stays");

    let venv = sandbox.venv("venv");
    let output = sandbox.install_bundled(&venv, &[bundled::HELLO_V1, bundled::MANY], &[]);
    assert_success_without_warnings(&output);
    assert_contains(&stderr(&output), "Unpacked 2 packages into the cache");
    assert_eq!(sandbox.archives(HELLO).len(), 2);
    assert_eq!(sandbox.archives(MANY).len(), 2);
    assert_hello_runs(&venv);
    assert_many_runs(&venv);
    assert_environment_matches_record(&venv);

    let later = assert_later_install_reuses(
        &sandbox,
        "later",
        &[(bundled::HELLO_V1, HELLO), (bundled::MANY, MANY)],
    );
    assert_hello_runs(&later);
    assert_many_runs(&later);
    assert_environment_matches_record(&later);
}

// ---------------------------------------------------------------------------
// Archives, pointers and manifests removed or emptied
// ---------------------------------------------------------------------------

#[test]
fn whole_archive_directory_removed_leaving_a_dangling_pointer() {
    let sandbox = Sandbox::new();
    warm(&sandbox, &[bundled::HELLO_V1], &[]);
    let archive = sandbox.archives(HELLO).remove(0);
    fs_err::remove_dir_all(&archive).expect("remove archive");
    assert!(sandbox.only_pointer(HELLO).is_file(), "the pointer dangles");
    assert_eq!(sandbox.archives(HELLO).len(), 0);

    assert_hello_healed(&sandbox, "gone", 1);
}

#[test]
fn record_deleted_from_the_archive_dist_info() {
    let sandbox = Sandbox::new();
    warm(&sandbox, &[bundled::HELLO_V1], &[]);
    let tree = sandbox.only_archive_tree(HELLO);
    fs_err::remove_file(tree.join("keel_demo_hello-1.0.0.dist-info/RECORD")).expect("rm");

    assert_hello_healed(
        &sandbox,
        "keel_demo_hello-1.0.0.dist-info/RECORD: missing",
        2,
    );
}

#[test]
fn metadata_deleted_from_the_archive_dist_info() {
    let sandbox = Sandbox::new();
    warm(&sandbox, &[bundled::HELLO_V1], &[]);
    let tree = sandbox.only_archive_tree(HELLO);
    fs_err::remove_file(tree.join("keel_demo_hello-1.0.0.dist-info/METADATA")).expect("rm");

    let venv = sandbox.venv("venv");
    let output = sandbox.install_bundled(&venv, &[bundled::HELLO_V1], &[]);
    assert_repairs(
        &sandbox,
        &output,
        &[(
            bundled::HELLO_V1,
            "keel_demo_hello-1.0.0.dist-info/METADATA: missing",
        )],
    );
    assert!(
        python(
            &venv,
            "import importlib.metadata as m; print(m.version('keel-demo-hello'))"
        )
        .trim()
            == "1.0.0",
        "METADATA must be installed"
    );
    assert_healed(
        &sandbox,
        &venv,
        (bundled::HELLO_V1, HELLO),
        2,
        assert_hello_runs,
    );
}

#[test]
fn manifest_deleted_from_the_archive() {
    let sandbox = Sandbox::new();
    warm(&sandbox, &[bundled::HELLO_V1], &[]);
    let archive = sandbox.archives(HELLO).remove(0);
    fs_err::remove_file(archive.join(common::MANIFEST)).expect("rm");

    assert_hello_healed(&sandbox, "manifest", 2);
}

/// An empty manifest: what a power cut can leave of a file that was renamed
/// into place before its data reached the disk.
#[test]
fn manifest_left_empty_by_a_power_cut() {
    let sandbox = Sandbox::new();
    warm(&sandbox, &[bundled::HELLO_V1], &[]);
    let archive = sandbox.archives(HELLO).remove(0);
    fs_err::write(archive.join(common::MANIFEST), b"").expect("empty the manifest");

    assert_hello_healed(&sandbox, "manifest", 2);
}

/// Without its pointer the wheel is simply not cached: keel unpacks it
/// again (no damage to report), and the orphaned archive does not disturb it.
#[test]
fn pointer_file_deleted_is_a_plain_cache_miss() {
    let sandbox = Sandbox::new();
    warm(&sandbox, &[bundled::HELLO_V1], &[]);
    fs_err::remove_file(sandbox.only_pointer(HELLO)).expect("rm pointer");

    let venv = sandbox.venv("venv");
    let output = sandbox.install_bundled(&venv, &[bundled::HELLO_V1], &[]);
    assert_success_without_warnings(&output);
    assert_contains(&stderr(&output), "Unpacked 1 package into the cache");
    assert_eq!(
        sandbox.archives(HELLO).len(),
        2,
        "unpacked beside the orphan"
    );
    assert!(
        sandbox.only_pointer(HELLO).is_file(),
        "a new pointer is written"
    );
    assert_hello_runs(&venv);
    assert_environment_matches_record(&venv);

    let later = assert_later_install_reuses(&sandbox, "later", &[(bundled::HELLO_V1, HELLO)]);
    assert_hello_runs(&later);
    assert_environment_matches_record(&later);
}

#[test]
fn pointer_left_empty_by_a_power_cut() {
    let sandbox = Sandbox::new();
    warm(&sandbox, &[bundled::HELLO_V1], &[]);
    fs_err::write(sandbox.only_pointer(HELLO), b"").expect("empty the pointer");

    assert_hello_healed(&sandbox, "pointer", 2);
}

// ---------------------------------------------------------------------------
// Archive files truncated, replaced by a directory or a symlink
// ---------------------------------------------------------------------------

#[test]
fn archive_file_truncated_to_zero_by_a_power_cut() {
    let sandbox = Sandbox::new();
    warm(&sandbox, &[bundled::HELLO_V1], &[]);
    let file = sandbox
        .only_archive_tree(HELLO)
        .join("keel_demo_hello/__init__.py");
    let pristine = fs_err::read(&file).expect("read");
    fs_err::OpenOptions::new()
        .write(true)
        .open(&file)
        .expect("open")
        .set_len(0)
        .expect("truncate");

    let venv = sandbox.venv("venv");
    let output = sandbox.install_bundled(&venv, &[bundled::HELLO_V1], &[]);
    assert_repairs(
        &sandbox,
        &output,
        &[(
            bundled::HELLO_V1,
            &format!(
                "keel_demo_hello/__init__.py: 0 bytes instead of {}",
                pristine.len()
            ),
        )],
    );
    assert_regular_file_with(
        &site_packages(&venv).join("keel_demo_hello/__init__.py"),
        &pristine,
    );
    assert_healed(
        &sandbox,
        &venv,
        (bundled::HELLO_V1, HELLO),
        2,
        assert_hello_runs,
    );
}

/// A `.data/scripts/` file takes another path through staging (read,
/// verified, `#!python` rewritten): its damage must be caught as well.
#[test]
fn data_script_truncated_to_half_in_the_archive() {
    let sandbox = Sandbox::new();
    warm(&sandbox, &[bundled::DATA], &[]);
    let file = sandbox
        .only_archive_tree(DATA)
        .join("keel_demo_data-0.3.0.data/scripts/keel-data-tool");
    let size = fs_err::metadata(&file).expect("stat").len();
    fs_err::OpenOptions::new()
        .write(true)
        .open(&file)
        .expect("open")
        .set_len(size / 2)
        .expect("truncate");

    let venv = sandbox.venv("venv");
    let output = sandbox.install_bundled(&venv, &[bundled::DATA], &[]);
    assert_repairs(
        &sandbox,
        &output,
        &[(
            bundled::DATA,
            &format!(
                "keel_demo_data-0.3.0.data/scripts/keel-data-tool: {} bytes instead of {size}",
                size / 2
            ),
        )],
    );
    assert_healed(&sandbox, &venv, (bundled::DATA, DATA), 2, assert_data_runs);
}

#[test]
fn archive_file_replaced_by_a_directory() {
    let sandbox = Sandbox::new();
    warm(&sandbox, &[bundled::HELLO_V1], &[]);
    let file = sandbox
        .only_archive_tree(HELLO)
        .join("keel_demo_hello/sub/util.py");
    let pristine = fs_err::read(&file).expect("read");
    fs_err::remove_file(&file).expect("rm");
    fs_err::create_dir(&file).expect("mkdir in its place");
    fs_err::write(file.join("stray.py"), b"print('stray')\n").expect("write stray");

    let venv = sandbox.venv("venv");
    let output = sandbox.install_bundled(&venv, &[bundled::HELLO_V1], &[]);
    assert_repairs(
        &sandbox,
        &output,
        &[(
            bundled::HELLO_V1,
            "keel_demo_hello/sub/util.py: not a regular file",
        )],
    );
    assert_regular_file_with(
        &site_packages(&venv).join("keel_demo_hello/sub/util.py"),
        &pristine,
    );
    assert_healed(
        &sandbox,
        &venv,
        (bundled::HELLO_V1, HELLO),
        2,
        assert_hello_runs,
    );
}

/// A symlink to a file with exactly the right content is still not the
/// archive keel wrote: the environment must get a real file, not a link out
/// of the cache. Checked for the default link mode (clone, falling back to
/// hardlink) and for `copy`.
#[test]
fn archive_file_replaced_by_a_symlink_to_an_identical_copy_elsewhere() {
    for link_mode in [None, Some("copy")] {
        let sandbox = Sandbox::new();
        let extra: Vec<&str> = link_mode.iter().flat_map(|m| ["--link-mode", m]).collect();
        warm(&sandbox, &[bundled::HELLO_V1], &extra);
        let file = sandbox
            .only_archive_tree(HELLO)
            .join("keel_demo_hello/__init__.py");
        let pristine = fs_err::read(&file).expect("read");
        let elsewhere = sandbox.path().join("elsewhere.py");
        fs_err::write(&elsewhere, &pristine).expect("copy elsewhere");
        replace_by_symlink(&file, &elsewhere);

        let venv = sandbox.venv("venv");
        let output = sandbox.install_bundled(&venv, &[bundled::HELLO_V1], &extra);
        assert_repairs(
            &sandbox,
            &output,
            &[(
                bundled::HELLO_V1,
                "keel_demo_hello/__init__.py: not a regular file",
            )],
        );
        assert_eq!(sandbox.archives(HELLO).len(), 2, "{link_mode:?}");
        let installed = site_packages(&venv).join("keel_demo_hello/__init__.py");
        assert_regular_file_with(&installed, &pristine);
        assert_ne!(
            fs_err::metadata(&installed).expect("stat").ino(),
            fs_err::metadata(&elsewhere).expect("stat").ino(),
            "{link_mode:?}: the environment must not share the file outside the cache"
        );
        assert_hello_runs(&venv);
        assert_environment_matches_record(&venv);

        let later = assert_later_install_reuses(&sandbox, "later", &[(bundled::HELLO_V1, HELLO)]);
        assert_hello_runs(&later);
        assert_environment_matches_record(&later);
    }
}

#[test]
fn archive_file_replaced_by_a_symlink_to_etc_passwd() {
    let sandbox = Sandbox::new();
    warm(&sandbox, &[bundled::HELLO_V1], &[]);
    let file = sandbox
        .only_archive_tree(HELLO)
        .join("keel_demo_hello/sub/util.py");
    let pristine = fs_err::read(&file).expect("read");
    replace_by_symlink(&file, Path::new("/etc/passwd"));

    let venv = sandbox.venv("venv");
    let output = sandbox.install_bundled(&venv, &[bundled::HELLO_V1], &[]);
    assert_repairs(
        &sandbox,
        &output,
        &[(
            bundled::HELLO_V1,
            "keel_demo_hello/sub/util.py: not a regular file",
        )],
    );
    assert_regular_file_with(
        &site_packages(&venv).join("keel_demo_hello/sub/util.py"),
        &pristine,
    );
    assert_healed(
        &sandbox,
        &venv,
        (bundled::HELLO_V1, HELLO),
        2,
        assert_hello_runs,
    );
}

/// A named pipe where a `.data/scripts/` file was: another kind of "not a
/// regular file". Opening a FIFO for reading blocks until a writer comes, so
/// an installer that opens before it looks hangs forever; keel must refuse
/// it like any other non-regular file. Run with a deadline so that a hang
/// fails the test instead of the suite.
#[test]
fn data_script_replaced_by_a_named_pipe_in_the_archive() {
    let sandbox = Sandbox::new();
    warm(&sandbox, &[bundled::DATA], &[]);
    let file = sandbox
        .only_archive_tree(DATA)
        .join("keel_demo_data-0.3.0.data/scripts/keel-data-tool");
    fs_err::remove_file(&file).expect("rm");
    assert_success(&run(std::process::Command::new("mkfifo").arg(&file)));

    let venv = sandbox.venv("venv");
    let output = install_with_deadline(&sandbox, &venv, &[bundled::DATA], Duration::from_secs(5));
    assert_repairs(
        &sandbox,
        &output,
        &[(
            bundled::DATA,
            "keel_demo_data-0.3.0.data/scripts/keel-data-tool: not a regular file",
        )],
    );
    assert_healed(&sandbox, &venv, (bundled::DATA, DATA), 2, assert_data_runs);
}

/// `keel install` like [`Sandbox::install_bundled`], killed (and the test
/// failed) if it has not finished after `deadline`.
fn install_with_deadline(
    sandbox: &Sandbox,
    venv: &Path,
    wheels: &[&str],
    deadline: Duration,
) -> Output {
    output_with_limit(
        keel_install(venv, &sandbox.cache).args(sandbox.wheels(wheels)),
        deadline,
        "`keel install`",
    )
}

// ---------------------------------------------------------------------------
// Not damage: a cache restored from a backup
// ---------------------------------------------------------------------------

/// A cache restored with `cp -a` (or `rsync -a`, or from a backup) has the
/// same bytes and modification times but new inodes, so no stamp holds.
/// That is not damage: keel must hash the files, find them intact, record
/// new stamps, and neither warn nor unpack again; the next install trusts
/// the new stamps.
#[test]
fn cache_restored_from_a_backup_is_rehashed_not_reextracted() {
    let sandbox = Sandbox::new();
    warm(&sandbox, &[bundled::HELLO_V1, bundled::DATA], &[]);
    let archives_before = (sandbox.archives(HELLO), sandbox.archives(DATA));
    let original = sandbox.path().join("cache.original");
    fs_err::rename(&sandbox.cache, &original).expect("move the cache away");
    let copied = run(std::process::Command::new("cp")
        .arg("-a")
        .arg(&original)
        .arg(&sandbox.cache));
    assert_success(&copied);
    let file = "keel_demo_hello/__init__.py";
    assert_ne!(
        fs_err::metadata(sandbox.only_archive_tree(HELLO).join(file))
            .expect("stat")
            .ino(),
        fs_err::metadata(
            original
                .join(
                    sandbox
                        .only_archive_tree(HELLO)
                        .strip_prefix(&sandbox.cache)
                        .expect("prefix")
                )
                .join(file)
        )
        .expect("stat")
        .ino(),
        "the restored cache should have new inodes"
    );

    let library_install = |venv: &Path| {
        keel_installer::install(
            &[
                sandbox.wheel(bundled::HELLO_V1),
                sandbox.wheel(bundled::DATA),
            ],
            &keel_installer::InstallOptions::new(venv, &sandbox.cache),
        )
        .expect("install")
    };
    let venv = sandbox.venv("venv");
    let report = library_install(&venv);
    assert!(report.repaired.is_empty(), "{:?}", report.repaired);
    assert!(report.unpacked.is_empty(), "{:?}", report.unpacked);
    assert_eq!(report.reused.len(), 2, "{report:?}");
    assert!(report.files_hashed > 0, "{report:?}");
    assert_eq!(report.files_trusted, 0, "no stamp can hold: {report:?}");
    assert_eq!(
        (sandbox.archives(HELLO), sandbox.archives(DATA)),
        archives_before
    );
    assert_hello_runs(&venv);
    assert_data_runs(&venv);
    assert_environment_matches_record(&venv);

    // The stamps were renewed: only the `.data` scripts (always read, to
    // rewrite `#!python`) are hashed again.
    let later = sandbox.venv("later");
    let report = library_install(&later);
    assert!(report.repaired.is_empty(), "{:?}", report.repaired);
    assert_eq!(report.files_hashed, 2, "{report:?}");
    assert!(report.files_trusted > 0, "{report:?}");
    assert_hello_runs(&later);
    assert_data_runs(&later);
    assert_environment_matches_record(&later);
}

// ---------------------------------------------------------------------------
// Edits in place
// ---------------------------------------------------------------------------

/// An archive file rewritten in place with bytes of the same length, its
/// modification time then restored to the nanosecond.
///
/// This is the documented limit of stamps: a stamp is (device, inode, size,
/// mtime), and this edit changes none of them, so the default mode trusts
/// the file without reading it. The test asserts only what is true of the
/// default mode — the install succeeds and reports every file as proven by
/// stamp, none hashed, nothing repaired — and makes no claim about the
/// environment it produced. `--verify` hashes every byte: it must catch the
/// edit, warn, re-extract, and install the wheel's true content.
#[test]
fn same_size_edit_with_mtime_restored_is_caught_by_verify() {
    let sandbox = Sandbox::new();
    warm(&sandbox, &[bundled::HELLO_V1], &[]);
    let file = sandbox
        .only_archive_tree(HELLO)
        .join("keel_demo_hello/__init__.py");
    let pristine = fs_err::read(&file).expect("read");
    let before = fs_err::symlink_metadata(&file).expect("stat");
    let edited = String::from_utf8(pristine.clone())
        .expect("utf-8")
        .replace("__version__ = \"1.0.0\"", "__version__ = \"6.6.6\"");
    assert_eq!(edited.len(), pristine.len());
    assert_ne!(edited.as_bytes(), &pristine[..]);
    let mut handle = fs_err::OpenOptions::new()
        .write(true)
        .open(&file)
        .expect("open for writing, in place");
    handle.write_all(edited.as_bytes()).expect("write");
    handle
        .set_times(
            std::fs::FileTimes::new()
                .set_modified(before.modified().expect("mtime"))
                .set_accessed(before.accessed().expect("atime")),
        )
        .expect("restore times");
    drop(handle);
    let after = fs_err::symlink_metadata(&file).expect("stat");
    assert_eq!(
        (
            after.dev(),
            after.ino(),
            after.size(),
            after.mtime(),
            after.mtime_nsec()
        ),
        (
            before.dev(),
            before.ino(),
            before.size(),
            before.mtime(),
            before.mtime_nsec()
        ),
        "the stamp should be unchanged by this edit"
    );

    // Default mode: what keel reports, through the library's InstallReport.
    let default_venv = sandbox.venv("default");
    let report = keel_installer::install(
        &[sandbox.wheel(bundled::HELLO_V1)],
        &keel_installer::InstallOptions::new(&default_venv, &sandbox.cache),
    )
    .expect("the default install succeeds");
    assert!(report.repaired.is_empty(), "{:?}", report.repaired);
    assert_eq!(report.reused, vec![bundled::HELLO_V1.to_string()]);
    assert_eq!(report.files_hashed, 0, "{report:?}");
    assert!(report.files_trusted > 0, "{report:?}");
    assert_eq!(sandbox.archives(HELLO).len(), 1);

    // --verify: every byte hashed, the edit caught and healed.
    let venv = sandbox.venv("verified");
    let output = sandbox.install_bundled(&venv, &[bundled::HELLO_V1], &["--verify"]);
    assert_repairs(
        &sandbox,
        &output,
        &[(
            bundled::HELLO_V1,
            "keel_demo_hello/__init__.py: content does not match RECORD",
        )],
    );
    assert_regular_file_with(
        &site_packages(&venv).join("keel_demo_hello/__init__.py"),
        &pristine,
    );
    assert_healed(
        &sandbox,
        &venv,
        (bundled::HELLO_V1, HELLO),
        2,
        assert_hello_runs,
    );
    let later_verified = sandbox.venv("later-verified");
    let output = sandbox.install_bundled(&later_verified, &[bundled::HELLO_V1], &["--verify"]);
    assert_success_without_warnings(&output);
    assert_hello_runs(&later_verified);
    assert_environment_matches_record(&later_verified);
}

/// The edit the user makes in environment A, where files are hardlinks into
/// the cache; `append` like `echo >> file`, or `overwrite` in place with
/// bytes of the same length (an editor that writes in place).
fn edit_through_a_hardlink_then_install_elsewhere(append: bool) {
    let sandbox = Sandbox::new();
    let venv_a = sandbox.venv("a");
    let output =
        sandbox.install_bundled(&venv_a, &[bundled::HELLO_V1], &["--link-mode", "hardlink"]);
    assert_success(&output);
    let in_a = site_packages(&venv_a).join("keel_demo_hello/__init__.py");
    let archived = sandbox
        .only_archive_tree(HELLO)
        .join("keel_demo_hello/__init__.py");
    assert_eq!(
        fs_err::metadata(&in_a).expect("stat").ino(),
        fs_err::metadata(&archived).expect("stat").ino(),
        "venv A should share its files with the cache (hardlinks)"
    );
    let pristine = fs_err::read(&in_a).expect("read");

    let edited: Vec<u8> = if append {
        let mut f = fs_err::OpenOptions::new()
            .append(true)
            .open(&in_a)
            .expect("open for append");
        f.write_all(b"\nraise SystemExit('edited by the user')\n")
            .expect("append");
        [&pristine[..], b"\nraise SystemExit('edited by the user')\n"].concat()
    } else {
        let text = String::from_utf8(pristine.clone())
            .expect("utf-8")
            .replace("__version__ = \"1.0.0\"", "__version__ = \"9.9.9\"");
        assert_eq!(text.len(), pristine.len());
        let mut f = fs_err::OpenOptions::new()
            .write(true)
            .open(&in_a)
            .expect("open for writing, in place");
        f.write_all(text.as_bytes()).expect("overwrite");
        text.into_bytes()
    };
    assert_eq!(
        fs_err::read(&archived).expect("read"),
        edited,
        "the edit reached the cache through the hardlink"
    );

    let venv_b = sandbox.venv("b");
    let output = sandbox.install_bundled(&venv_b, &[bundled::HELLO_V1], &[]);
    let detail = if append {
        format!(
            "keel_demo_hello/__init__.py: {} bytes instead of {}",
            edited.len(),
            pristine.len()
        )
    } else {
        "keel_demo_hello/__init__.py: content does not match RECORD".to_owned()
    };
    assert_repairs(&sandbox, &output, &[(bundled::HELLO_V1, &detail)]);
    let in_b = site_packages(&venv_b).join("keel_demo_hello/__init__.py");
    assert_regular_file_with(&in_b, &pristine);
    assert_ne!(
        fs_err::metadata(&in_b).expect("stat").ino(),
        fs_err::metadata(&in_a).expect("stat").ino()
    );
    // Venv A keeps the user's edit: keel does not touch other environments.
    assert_eq!(fs_err::read(&in_a).expect("read"), edited);
    assert_healed(
        &sandbox,
        &venv_b,
        (bundled::HELLO_V1, HELLO),
        2,
        assert_hello_runs,
    );
}

#[test]
fn appending_to_a_hardlinked_file_in_one_venv_does_not_reach_the_next_venv() {
    edit_through_a_hardlink_then_install_elsewhere(true);
}

#[test]
fn overwriting_a_hardlinked_file_in_place_in_one_venv_does_not_reach_the_next_venv() {
    edit_through_a_hardlink_then_install_elsewhere(false);
}

// ---------------------------------------------------------------------------
// Damage in the middle of a multi-wheel install
// ---------------------------------------------------------------------------

/// Six wheels cached; two archives damaged in two different ways — one whole
/// archive gone (noticed at lookup), one file truncated (noticed while
/// staging). Exactly those two are repaired, the other four reused.
#[test]
fn two_archives_damaged_differently_in_the_middle_of_a_six_wheel_install() {
    let sandbox = Sandbox::new();
    let wheels: Vec<&str> = ALL_SIX.iter().map(|(w, _)| *w).collect();
    warm(&sandbox, &wheels, &[]);
    let archives_before: Vec<PathBuf> = ALL_SIX
        .iter()
        .map(|(_, dist)| sandbox.archives(dist).remove(0))
        .collect();

    fs_err::remove_dir_all(sandbox.archives(LEGACY).remove(0)).expect("rm legacy archive");
    let truncated = sandbox
        .only_archive_tree(MANY)
        .join("keel_demo_many/gamma/__init__.py");
    let size = fs_err::metadata(&truncated).expect("stat").len();
    fs_err::OpenOptions::new()
        .write(true)
        .open(&truncated)
        .expect("open")
        .set_len(size / 3)
        .expect("truncate");

    let venv = sandbox.venv("venv");
    let output = sandbox.install_bundled(&venv, &wheels, &[]);
    assert_repairs(
        &sandbox,
        &output,
        &[
            (bundled::LEGACY, "gone"),
            (
                bundled::MANY,
                &format!(
                    "keel_demo_many/gamma/__init__.py: {} bytes instead of {size}",
                    size / 3
                ),
            ),
        ],
    );
    assert_contains(&stderr(&output), "Installed 6 packages in");
    assert!(!stderr(&output).contains("Unpacked"), "{}", stderr(&output));
    for ((_, dist), before) in ALL_SIX.iter().zip(&archives_before) {
        let now = sandbox.archives(dist);
        match *dist {
            MANY => assert_eq!(now.len(), 2, "{dist}: {now:?}"),
            LEGACY => {
                assert_eq!(now.len(), 1, "{dist}: {now:?}");
                assert_ne!(&now[0], before, "{dist}: a fresh archive is expected");
            }
            _ => assert_eq!(now, std::slice::from_ref(before), "{dist} should be reused"),
        }
    }
    assert_all_six_run(&venv);
    assert_environment_matches_record(&venv);

    let later = assert_later_install_reuses(&sandbox, "later", &ALL_SIX);
    assert_all_six_run(&later);
    assert_environment_matches_record(&later);
}

/// One import of every package of the six wheels, and one console script of
/// each wheel that has one (kept to few Python starts: the test must stay quick).
#[track_caller]
fn assert_all_six_run(venv: &Path) {
    assert_eq!(
        python(
            venv,
            "import keel_demo_hello, keel_demo_data, keel_demo_data_extra, keel_demo_many, \
             keel_demo_legacy, keel_demo_ns.a, keel_demo_ns.b; \
             print(keel_demo_hello.__version__, keel_demo_many.count(), keel_demo_legacy.legacy())"
        )
        .trim(),
        format!("1.0.0 {} legacy ok", bundled::MANY_MODULE_COUNT)
    );
    assert_eq!(
        script(venv, "keel-hello", &[]).trim(),
        "hello from keel_demo_hello 1.0.0"
    );
    assert_eq!(
        script(venv, "keel-many", &[]).trim(),
        bundled::MANY_MODULE_COUNT.to_string()
    );
    let tool = script(venv, "keel-data-tool", &[]);
    assert!(tool.starts_with("data tool ok"), "{tool}");
}
