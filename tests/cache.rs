//! Guarantees 5 and 6, *concurrency* and *cleanable*, for the cache
//! commands: `keel cache clean` whatever the permissions a failed build
//! left (run as an ordinary user: root ignores permission bits, so a test
//! run as root would prove nothing), never following a symlink out of the
//! cache; `keel cache prune` removing exactly what nothing refers to;
//! `keel cache verify` finding every kind of archive damage the vandalism
//! tests make, and `--repair` healing it so that the next install reuses
//! the archive without a word.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime};

use common::ageing::backdate_files_under;
use common::time_limit::output_with_limit;
use common::unprivileged::{User, run_as, unprivileged_user};
use common::*;
use keel_fixtures::bundled;

const HELLO: &str = "keel-demo-hello";
const MANY: &str = "keel-demo-many";
const DATA: &str = "keel-demo-data";

/// The bundled wheels one install can take (one version of hello).
const SIX: [&str; 6] = ALL_BUNDLED_DISTRIBUTIONS;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// `keel cache ARGS --cache-dir CACHE` of the sandbox's cache.
fn keel_cache(sandbox: &Sandbox, args: &[&str]) -> Output {
    run(&mut cache_command(&sandbox.cache, args))
}

/// Installs wheels (by fixture file name) into a fresh environment.
fn install(
    sandbox: &Sandbox,
    venv_name: &str,
    wheels: &[&str],
    extra: &[&str],
) -> (PathBuf, Output) {
    let venv = sandbox.venv(venv_name);
    let output = sandbox.install_bundled(&venv, wheels, extra);
    (venv, output)
}

/// A sandbox whose cache holds one intact archive of each of the six wheels.
fn warm_sandbox() -> Sandbox {
    let sandbox = Sandbox::new();
    let (_, output) = install(&sandbox, "warm", &SIX, &[]);
    assert_success_without_warnings(&output);
    sandbox
}

/// Everything that is not a directory under `root` (the root itself not
/// counted), and their total size, read as root.
fn count_files(root: &Path) -> (u64, u64) {
    let mut files = 0;
    let mut bytes = 0;
    for entry in walkdir::WalkDir::new(root).min_depth(1) {
        let entry = entry.expect("walk (as root)");
        if !entry.file_type().is_dir() {
            files += 1;
            bytes += entry.path().symlink_metadata().expect("lstat").size();
        }
    }
    (files, bytes)
}

/// The `Removed N files` / `Would remove N files` count a cache command printed.
fn reported_files(output: &Output) -> u64 {
    let text = stderr(output);
    let line = text
        .lines()
        .find(|l| l.starts_with("Removed ") || l.starts_with("Would remove "))
        .unwrap_or_else(|| panic!("no `Removed …` line in:\n{text}"));
    let before_files = line
        .split(" file")
        .next()
        .expect("a file count")
        .rsplit(' ')
        .next()
        .expect("a number");
    before_files
        .replace(',', "")
        .parse()
        .unwrap_or_else(|_| panic!("no file count in `{line}`"))
}

// ---------------------------------------------------------------------------
// An ordinary user
// ---------------------------------------------------------------------------

/// Gives `root` and everything under it (symlinks themselves, not their
/// targets) to the user.
fn give_to(root: &Path, user: User) {
    for entry in walkdir::WalkDir::new(root) {
        let entry = entry.expect("walk");
        std::os::unix::fs::lchown(entry.path(), Some(user.uid), Some(user.gid)).expect("lchown");
    }
}

/// Gives the sandbox directory itself (not what is in it) to the user, so
/// that the user can reach the cache inside and remove the cache directory.
fn give_sandbox_dir_to(sandbox: &Sandbox, user: User) {
    std::os::unix::fs::lchown(sandbox.path(), Some(user.uid), Some(user.gid))
        .expect("lchown sandbox");
    chmod(sandbox.path(), 0o755);
}

// ---------------------------------------------------------------------------
// clean: permissions
// ---------------------------------------------------------------------------

/// Every owner permission a directory can lack (`d---------` to
/// `drw-------`), and the read-only `dr-xr-xr-x` a build tool leaves.
const BROKEN_MODES: [u32; 8] = [0o000, 0o100, 0o200, 0o300, 0o400, 0o500, 0o600, 0o555];

/// A directory tree like a failed build leaves: `dir/a/b/file`, `dir/c`.
fn plant_tree(dir: &Path) {
    fs_err::create_dir_all(dir.join("a/b")).expect("mkdir");
    fs_err::write(dir.join("a/b/module.py"), b"x = 1\n").expect("write");
    fs_err::write(dir.join("a/readme.txt"), b"left by a failed build\n").expect("write");
    fs_err::write(dir.join("c"), b"c").expect("write");
}

#[test]
fn clean_as_an_ordinary_user_removes_directories_of_every_broken_mode() {
    let user = unprivileged_user();
    let sandbox = warm_sandbox();
    let cache = sandbox.cache.clone();

    // Failed unpacks in tmp/ and failed builds inside archives, one per
    // mode, the mode on the directory itself and on one inside it.
    let many_tree = sandbox.only_archive_tree(MANY);
    let mut broken: Vec<(PathBuf, u32)> = Vec::new();
    for mode in BROKEN_MODES {
        let unpack = cache.join(format!("tmp/unpack-failed-{mode:03o}"));
        plant_tree(&unpack);
        broken.push((unpack.join("a"), mode));
        broken.push((unpack, mode));
        let build = many_tree.join(format!("build-{mode:03o}"));
        plant_tree(&build);
        broken.push((build.join("a/b"), mode));
        broken.push((build, mode));
    }
    // Real archive directories, each with a different broken mode.
    let mut archive_dirs: Vec<PathBuf> = sandbox
        .archives(HELLO)
        .into_iter()
        .chain(sandbox.archives(DATA))
        .chain(sandbox.archives("keel-demo-ns-a"))
        .collect();
    archive_dirs.push(many_tree.join("keel_demo_many"));
    for (dir, mode) in archive_dirs.iter().zip([0o000, 0o300, 0o500, 0o100]) {
        broken.push((dir.clone(), mode));
    }
    // Read-only and unreadable files; a deep tree with a read-only bottom.
    let manifest = sandbox.archives(MANY)[0].join(common::MANIFEST);
    let mut deep = cache.join("tmp/unpack-deep");
    for level in 0..120 {
        deep.push(format!("d{level}"));
    }
    fs_err::create_dir_all(&deep).expect("deep tree");
    fs_err::write(deep.join("bottom.py"), b"deep\n").expect("write");

    give_to(&cache, user);
    give_sandbox_dir_to(&sandbox, user);
    chmod(&manifest, 0o444);
    chmod(&deep.join("bottom.py"), 0o000);
    chmod(&deep, 0o500);
    chmod(deep.parent().expect("parent"), 0o000);
    for (dir, mode) in &broken {
        chmod(dir, *mode);
    }

    // The user really is unprivileged: the broken modes bite.
    let unreadable = broken
        .iter()
        .find(|(_, mode)| *mode == 0o000)
        .map(|(dir, _)| dir.clone())
        .expect("a 0o000 directory");
    let listing = run_as(Command::new("ls").arg(&unreadable), user);
    assert!(
        !listing.status.success() && stderr(&listing).contains("Permission denied"),
        "the test user could list a d--------- directory: the test would prove nothing"
    );
    let control = run_as(Command::new("ls").arg(cache.join("pointers-v1")), user);
    assert_success(&control);
    let naive = run_as(
        Command::new("rm")
            .arg("-rf")
            .arg(cache.join("tmp/unpack-failed-000")),
        user,
    );
    assert!(
        !naive.status.success(),
        "`rm -rf` removed a d--------- tree: the test would prove nothing"
    );
    let (files, _) = count_files(&cache);

    let output = run_as(&mut cache_command(&cache, &["clean"]), user);
    assert_exit(&output, 0);
    assert!(
        !cache.exists(),
        "the cache is still there:\n{}",
        stderr(&output)
    );
    assert_eq!(reported_files(&output), files, "{}", stderr(&output));
    assert_contains(&stderr(&output), &format!("from {}", cache.display()));
}

#[test]
fn clean_as_an_ordinary_user_never_follows_a_symlink_out_of_the_cache() {
    let user = unprivileged_user();
    let sandbox = warm_sandbox();
    let cache = sandbox.cache.clone();
    // What the links point at belongs to the same user and is writable by
    // it: a cleaner that followed a link would succeed in deleting it.
    let outside = sandbox.path().join("precious");
    plant_tree(&outside.join("dir"));
    fs_err::write(outside.join("file.txt"), b"precious\n").expect("write");
    give_to(&outside, user);

    let tree = sandbox.only_archive_tree(HELLO);
    let links = [
        (tree.join("link-to-dir"), outside.join("dir")),
        (
            tree.join("keel_demo_hello/link-to-file"),
            outside.join("file.txt"),
        ),
        (cache.join("archives-v1/evil"), outside.join("dir")),
        (cache.join("tmp/unpack-evil"), outside.clone()),
        (
            cache.join("tmp/dangling"),
            sandbox.path().join("nothing-here"),
        ),
    ];
    for (link, target) in &links {
        fs_err::os::unix::fs::symlink(target, link).expect("symlink");
    }
    give_to(&cache, user);
    give_sandbox_dir_to(&sandbox, user);
    // A broken mode between the cache and a link, too.
    chmod(&tree, 0o500);
    let before = snapshot(&outside);

    let output = run_as(&mut cache_command(&cache, &["clean"]), user);
    assert_exit(&output, 0);
    assert!(!cache.exists(), "{}", stderr(&output));
    assert_same_tree(&before, &snapshot(&outside));
}

// ---------------------------------------------------------------------------
// clean: what, and what not
// ---------------------------------------------------------------------------

#[test]
fn clean_reports_what_it_freed_and_removes_the_whole_cache() {
    let sandbox = warm_sandbox();
    let (files, bytes) = count_files(&sandbox.cache);
    assert!(files > 300, "the six wheels hold hundreds of files");

    let dry = keel_cache(&sandbox, &["clean", "--dry-run"]);
    assert_exit(&dry, 0);
    assert_eq!(reported_files(&dry), files, "{}", stderr(&dry));
    assert!(
        stderr(&dry).starts_with("Would remove "),
        "{}",
        stderr(&dry)
    );

    let output = keel_cache(&sandbox, &["clean"]);
    assert_exit(&output, 0);
    assert_eq!(reported_files(&output), files);
    // `Removed 353 files (141.6 KiB) from …`
    let kib = bytes as f64 / 1024.0;
    assert!(
        stderr(&output).contains(&format!("({kib:.1} KiB)")),
        "expected the size in KiB ({kib:.1}):\n{}",
        stderr(&output)
    );
    assert!(!sandbox.cache.exists());

    // A cache that is not there: nothing to do, and said so.
    let again = keel_cache(&sandbox, &["clean"]);
    assert_exit(&again, 0);
    assert_contains(&stderr(&again), "nothing to clean");

    // The next install starts from a cold cache and works.
    let (venv, output) = install(&sandbox, "after", &[bundled::HELLO_V1], &[]);
    assert_success(&output);
    assert_contains(&stderr(&output), "Unpacked 1 package");
    assert_eq!(
        script(&venv, "keel-hello", &[]).trim(),
        "hello from keel_demo_hello 1.0.0"
    );
}

#[test]
fn clean_dry_run_changes_nothing() {
    let sandbox = warm_sandbox();
    chmod(&sandbox.only_archive_tree(HELLO), 0o500);
    let before = snapshot(&sandbox.cache);
    for args in [
        &["clean", "--dry-run"][..],
        &["clean", "--dry-run", "keel-demo-many"],
    ] {
        let output = keel_cache(&sandbox, args);
        assert_exit(&output, 0);
        assert_same_tree(&before, &snapshot(&sandbox.cache));
    }
}

#[test]
fn clean_of_one_distribution_keeps_every_other_archive() {
    let sandbox = warm_sandbox();
    let hello_files = count_files(&sandbox.cache.join("archives-v1").join(HELLO)).0
        + count_files(&sandbox.cache.join("pointers-v1").join(HELLO)).0;
    let keep = sandbox.cache.join("archives-v1").join(MANY);
    let before = snapshot(&keep);

    // Any spelling of the name.
    let output = keel_cache(&sandbox, &["clean", "Keel_Demo.Hello"]);
    assert_exit(&output, 0);
    assert_eq!(reported_files(&output), hello_files, "{}", stderr(&output));
    assert!(sandbox.archives(HELLO).is_empty());
    assert!(!sandbox.cache.join("pointers-v1").join(HELLO).exists());
    assert_same_tree(&before, &snapshot(&keep));

    let unknown = keel_cache(&sandbox, &["clean", "not-cached"]);
    assert_exit(&unknown, 0);
    assert_contains(&stderr(&unknown), "No cache entries for not-cached");

    // Only hello is unpacked again; the rest is reused.
    let (venv, output) = install(&sandbox, "after", &SIX, &[]);
    assert_success(&output);
    assert_contains(&stderr(&output), "Unpacked 1 package ");
    assert_environment_matches_record(&venv);
}

#[test]
fn clean_of_a_distribution_whose_directory_is_a_symlink_removes_only_the_link() {
    let sandbox = warm_sandbox();
    let outside = sandbox.path().join("outside");
    plant_tree(&outside);
    let before = snapshot(&outside);
    let link = sandbox.cache.join("archives-v1/linked");
    fs_err::os::unix::fs::symlink(&outside, &link).expect("symlink");

    let output = keel_cache(&sandbox, &["clean", "linked"]);
    assert_exit(&output, 0);
    assert!(fs_err::symlink_metadata(&link).is_err(), "the link stays");
    assert_same_tree(&before, &snapshot(&outside));

    // A symlinked top-level directory is never entered: refused, untouched.
    let archives = sandbox.cache.join("archives-v1");
    let moved = sandbox.path().join("archives-elsewhere");
    fs_err::rename(&archives, &moved).expect("move archives");
    fs_err::os::unix::fs::symlink(&moved, &archives).expect("symlink");
    let before = snapshot(&moved);
    let output = keel_cache(&sandbox, &["clean", HELLO]);
    assert_exit(&output, 1);
    assert_contains(&stderr(&output), "archives-v1` is not a directory");
    assert_same_tree(&before, &snapshot(&moved));
}

#[test]
fn clean_refuses_a_directory_that_is_not_a_keel_cache() {
    let sandbox = Sandbox::new();
    let home = sandbox.path().join("home");
    fs_err::create_dir_all(home.join("projects")).expect("mkdir");
    fs_err::write(home.join("notes.txt"), b"mine\n").expect("write");
    let before = snapshot(&home);
    for args in [&["clean"][..], &["prune"]] {
        let output = run(&mut cache_command(&home, args));
        assert_exit(&output, 1);
        assert_contains(
            &stderr(&output),
            &format!("`{}` does not look like a keel cache", home.display()),
        );
        assert_same_tree(&before, &snapshot(&home));
    }
}

// ---------------------------------------------------------------------------
// prune
// ---------------------------------------------------------------------------

#[test]
fn prune_removes_exactly_what_nothing_refers_to_and_installs_then_unpack_only_that() {
    let sandbox = warm_sandbox();
    let cache = sandbox.cache.clone();
    // An archive without a pointer (its pointer deleted).
    fs_err::remove_file(sandbox.only_pointer(HELLO)).expect("rm pointer");
    let unreferenced = sandbox.archives(HELLO);
    // A pointer without an archive.
    let gone = sandbox.archives(DATA);
    fs_err::remove_dir_all(&gone[0]).expect("rm archive");
    let dangling = sandbox.only_pointer(DATA);
    // A damaged archive: a file deleted (tmpwatch).
    let damaged = sandbox.archives(MANY);
    fs_err::remove_file(damaged[0].join("tree/keel_demo_many/__init__.py")).expect("rm");
    // What killed processes leave: an unpack, a half-written pointer.
    let unpack = cache.join("tmp/unpack-killed");
    plant_tree(&unpack);
    let partial = cache.join("pointers-v1/keel-demo-legacy/.partial-x1y2z3");
    fs_err::write(&partial, b"{\"archi").expect("partial");
    // What stays, byte for byte.
    let intact = ["keel-demo-legacy", "keel-demo-ns-a", "keel-demo-ns-b"];
    let before: BTreeMap<&str, _> = intact
        .iter()
        .map(|d| (*d, snapshot(&sandbox.archives(d)[0])))
        .collect();
    let whole = snapshot(&cache);

    let dry = keel_cache(&sandbox, &["prune", "--dry-run"]);
    assert_exit(&dry, 0);
    assert_same_tree(&whole, &snapshot(&cache));

    let output = keel_cache(&sandbox, &["prune"]);
    assert_exit(&output, 0);
    let text = stderr(&output);
    for kind in [
        "1 unreferenced archive",
        "1 damaged archive",
        "2 dangling pointers",
        "1 unfinished unpack",
        "1 unfinished write",
    ] {
        assert!(text.contains(kind), "expected `{kind}` in:\n{text}");
    }
    assert_eq!(stderr(&dry).replace("Would remove", "Removed"), text);
    assert!(!unreferenced[0].exists());
    assert!(!damaged[0].exists());
    assert!(!dangling.exists());
    assert!(!unpack.exists() && !partial.exists());
    assert!(
        fs_err::read_dir(cache.join("tmp"))
            .expect("tmp")
            .next()
            .is_none(),
        "tmp/ is empty"
    );
    for (dist, snap) in &before {
        assert_same_tree(snap, &snapshot(&sandbox.archives(dist)[0]));
    }
    let again = keel_cache(&sandbox, &["prune"]);
    assert_exit(&again, 0);
    assert_contains(&stderr(&again), "Nothing to prune");

    // A clean miss for the pruned three, no damage to warn about.
    let (venv, output) = install(&sandbox, "after", &SIX, &[]);
    assert_success_without_warnings(&output);
    assert_contains(&stderr(&output), "Unpacked 3 packages");
    assert_environment_matches_record(&venv);
}

#[test]
fn prune_removes_the_unpack_a_killed_install_left_behind() {
    let sandbox = Sandbox::new();
    // A wheel large enough that its unpack can be caught in the act.
    let mut builder = keel_fixtures::WheelBuilder::new("keel_demo_big", "1.0");
    for i in 0..400 {
        builder = builder.file(&format!("keel_demo_big/m{i:03}.py"), vec![b'#'; 64 * 1024]);
    }
    let wheel = builder
        .build(&sandbox.path().join("big"))
        .expect("build a big wheel");
    let tmp = sandbox.cache.join("tmp");
    let mut caught = false;
    for attempt in 0..5 {
        let venv = sandbox.venv(&format!("v{attempt}"));
        let mut child = keel_install(&venv, &sandbox.cache)
            .arg(&wheel)
            .spawn()
            .expect("spawn keel");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let unpacking = fs_err::read_dir(&tmp)
                .map(|entries| entries.count() > 0)
                .unwrap_or(false);
            if unpacking || child.try_wait().expect("wait").is_some() {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let _ = child.kill();
        let _ = child.wait();
        if fs_err::read_dir(&tmp).is_ok_and(|entries| entries.count() > 0) {
            caught = true;
            break;
        }
        // Too late: the unpack had finished. Start again from a cold cache.
        assert_success(&keel_cache(&sandbox, &["clean"]));
    }
    assert!(caught, "no unpack was caught in progress in five attempts");

    let output = keel_cache(&sandbox, &["prune"]);
    assert_exit(&output, 0);
    assert_contains(&stderr(&output), "1 unfinished unpack");
    assert!(fs_err::read_dir(&tmp).expect("tmp").next().is_none());
    let venv = sandbox.venv("after");
    let output = sandbox.install(&venv, &[&wheel]);
    assert_success_without_warnings(&output);
    assert_environment_matches_record(&venv);
}

// ---------------------------------------------------------------------------
// verify and repair
// ---------------------------------------------------------------------------

/// One way real life damages an archive, and what `cache verify` must say.
struct Vandalism {
    wheel: &'static str,
    dist: &'static str,
    /// Text the report must contain.
    finding: &'static str,
    damage: fn(&Sandbox),
}

fn archive_file(sandbox: &Sandbox, dist: &str, entry: &str) -> PathBuf {
    sandbox.only_archive_tree(dist).join(entry)
}

const HELLO_INIT: &str = "keel_demo_hello/__init__.py";

fn vandalisms() -> Vec<Vandalism> {
    vec![
        Vandalism {
            wheel: bundled::MANY,
            dist: MANY,
            finding: "keel_demo_many/__init__.py: missing",
            damage: |s| {
                // tmpwatch: most files gone, every directory kept.
                for entry in walkdir::WalkDir::new(s.only_archive_tree(MANY)) {
                    let entry = entry.expect("walk");
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if entry.file_type().is_file() && !name.ends_with("7.py") {
                        fs_err::remove_file(entry.path()).expect("rm");
                    }
                }
            },
        },
        Vandalism {
            wheel: bundled::HELLO_V1,
            dist: HELLO,
            finding: "is gone",
            damage: |s| fs_err::remove_dir_all(&s.archives(HELLO)[0]).expect("rm archive"),
        },
        Vandalism {
            wheel: bundled::HELLO_V1,
            dist: HELLO,
            finding: "keel_demo_hello-1.0.0.dist-info/RECORD: missing",
            damage: |s| {
                fs_err::remove_file(archive_file(
                    s,
                    HELLO,
                    "keel_demo_hello-1.0.0.dist-info/RECORD",
                ))
                .expect("rm")
            },
        },
        Vandalism {
            wheel: bundled::HELLO_V1,
            dist: HELLO,
            finding: "keel_demo_hello-1.0.0.dist-info/METADATA: missing",
            damage: |s| {
                fs_err::remove_file(archive_file(
                    s,
                    HELLO,
                    "keel_demo_hello-1.0.0.dist-info/METADATA",
                ))
                .expect("rm")
            },
        },
        Vandalism {
            wheel: bundled::HELLO_V1,
            dist: HELLO,
            finding: "manifest",
            damage: |s| {
                fs_err::remove_file(s.archives(HELLO)[0].join(common::MANIFEST)).expect("rm")
            },
        },
        Vandalism {
            wheel: bundled::HELLO_V1,
            dist: HELLO,
            finding: "malformed",
            damage: |s| fs_err::write(s.only_pointer(HELLO), b"").expect("power cut"),
        },
        Vandalism {
            wheel: bundled::HELLO_V1,
            dist: HELLO,
            finding: "keel_demo_hello/__init__.py: 0 bytes instead of",
            damage: |s| {
                fs_err::File::create(archive_file(s, HELLO, HELLO_INIT)).expect("truncate");
            },
        },
        Vandalism {
            wheel: bundled::HELLO_V1,
            dist: HELLO,
            finding: "keel_demo_hello/__init__.py: not a regular file",
            damage: |s| {
                let file = archive_file(s, HELLO, HELLO_INIT);
                fs_err::remove_file(&file).expect("rm");
                fs_err::create_dir(&file).expect("mkdir");
            },
        },
        Vandalism {
            wheel: bundled::HELLO_V1,
            dist: HELLO,
            finding: "keel_demo_hello/__init__.py: not a regular file",
            damage: |s| {
                // A symlink to an identical copy is still not the archive's file.
                let file = archive_file(s, HELLO, HELLO_INIT);
                let copy = s.path().join("identical-copy.py");
                fs_err::copy(&file, &copy).expect("copy");
                fs_err::remove_file(&file).expect("rm");
                fs_err::os::unix::fs::symlink(&copy, &file).expect("symlink");
            },
        },
        Vandalism {
            wheel: bundled::HELLO_V1,
            dist: HELLO,
            finding: "keel_demo_hello/__init__.py: content does not match RECORD",
            damage: |s| {
                // Same size, mtime put back: a stamp still holds; only hashing sees it.
                let file = archive_file(s, HELLO, HELLO_INIT);
                let before = fs_err::symlink_metadata(&file).expect("stat");
                let text = fs_err::read_to_string(&file).expect("read");
                let edited = text.replace("1.0.0", "6.6.6");
                assert_eq!(edited.len(), text.len());
                let mut handle = fs_err::OpenOptions::new()
                    .write(true)
                    .open(&file)
                    .expect("open in place");
                handle.write_all(edited.as_bytes()).expect("write");
                handle
                    .set_times(
                        std::fs::FileTimes::new().set_modified(before.modified().expect("mtime")),
                    )
                    .expect("restore mtime");
            },
        },
        Vandalism {
            wheel: bundled::HELLO_V1,
            dist: HELLO,
            finding: "keel_demo_hello/__init__.py: content does not match RECORD",
            damage: |s| {
                // An edit in an environment, through its hardlink into the cache.
                let venv = s.path().join("warm");
                let file = site_packages(&venv).join(HELLO_INIT);
                assert_eq!(
                    fs_err::metadata(&file).expect("stat").ino(),
                    fs_err::metadata(archive_file(s, HELLO, HELLO_INIT))
                        .expect("stat")
                        .ino(),
                    "the warm install should hardlink"
                );
                let text = fs_err::read_to_string(&file).expect("read");
                fs_err::write(&file, text.replace("1.0.0", "9.9.9")).expect("edit in the venv");
            },
        },
        Vandalism {
            wheel: bundled::DATA,
            dist: DATA,
            finding: "keel_demo_data-0.3.0.data/scripts/keel-data-tool: not a regular file",
            damage: |s| {
                let file =
                    archive_file(s, DATA, "keel_demo_data-0.3.0.data/scripts/keel-data-tool");
                fs_err::remove_file(&file).expect("rm");
                assert_success(&run(Command::new("mkfifo").arg(&file)));
            },
        },
    ]
}

/// A `cache` command killed (and the test failed) after `limit`: a FIFO in
/// the cache must never make keel wait.
fn keel_cache_with_deadline(sandbox: &Sandbox, args: &[&str], limit: Duration) -> Output {
    output_with_limit(
        &mut cache_command(&sandbox.cache, args),
        limit,
        &format!("`keel cache {}`", args.join(" ")),
    )
}

#[test]
fn cache_verify_finds_and_repair_heals_every_kind_of_archive_damage() {
    for vandalism in vandalisms() {
        let sandbox = warm_sandbox();
        (vandalism.damage)(&sandbox);
        let limit = Duration::from_secs(30);

        let found = keel_cache_with_deadline(&sandbox, &["verify"], limit);
        assert_exit(&found, 1);
        let report = stdout(&found);
        assert!(
            report.contains(vandalism.wheel) && report.contains(vandalism.finding),
            "`cache verify` should name {} and `{}`:\n{report}",
            vandalism.wheel,
            vandalism.finding
        );
        assert_contains(
            &stderr(&found),
            "1 damaged (run `keel cache verify --repair`)",
        );

        let repaired = keel_cache_with_deadline(&sandbox, &["verify", "--repair"], limit);
        assert_exit(&repaired, 0);
        assert_contains(
            &stdout(&repaired),
            &format!(
                "repaired: re-extracted from {}",
                sandbox.wheel(vandalism.wheel).display()
            ),
        );
        assert_eq!(
            sandbox.archives(vandalism.dist).len(),
            1,
            "the damaged archive is replaced, not kept beside the fresh one"
        );
        let clean = keel_cache_with_deadline(&sandbox, &["verify"], limit);
        assert_exit(&clean, 0);
        assert_contains(&stderr(&clean), "all intact");

        // The next install, hashing every byte, reuses the repaired archive
        // without a word.
        let (venv, output) = install(&sandbox, "after", &SIX, &["--verify"]);
        assert_success_without_warnings(&output);
        assert!(!stderr(&output).contains("Unpacked"), "{}", stderr(&output));
        assert_eq!(
            python(
                &venv,
                "import keel_demo_hello; print(keel_demo_hello.__version__)"
            )
            .trim(),
            "1.0.0"
        );
        assert_eq!(script(&venv, "keel-data-sh", &[]).trim(), "sh tool ok");
        assert_environment_matches_record(&venv);
    }
}

#[test]
fn cache_verify_repair_forgets_an_archive_whose_wheel_is_gone() {
    let sandbox = warm_sandbox();
    fs_err::remove_file(archive_file(&sandbox, HELLO, HELLO_INIT)).expect("rm");
    let elsewhere = sandbox.path().join("moved");
    fs_err::create_dir(&elsewhere).expect("mkdir");
    let moved = elsewhere.join(bundled::HELLO_V1);
    fs_err::rename(sandbox.wheel(bundled::HELLO_V1), &moved).expect("move the wheel away");

    let output = keel_cache(&sandbox, &["verify", "--repair"]);
    assert_exit(&output, 0);
    assert_contains(
        &stdout(&output),
        &format!(
            "removed: its wheel `{}` is gone",
            sandbox.wheel(bundled::HELLO_V1).display()
        ),
    );
    assert!(sandbox.archives(HELLO).is_empty());
    assert!(!sandbox.cache.join("pointers-v1").join(HELLO).exists());
    assert_exit(&keel_cache(&sandbox, &["verify"]), 0);

    // The wheel at its new place: a plain miss, unpacked without a warning.
    let venv = sandbox.venv("after");
    let output = sandbox.install(&venv, &[&moved]);
    assert_success_without_warnings(&output);
    assert_contains(&stderr(&output), "Unpacked 1 package");
    assert_environment_matches_record(&venv);
}

#[test]
fn cache_verify_leaves_an_intact_cache_byte_for_byte_alone() {
    let sandbox = warm_sandbox();
    let before = snapshot(&sandbox.cache);
    let output = keel_cache(&sandbox, &["verify"]);
    assert_exit(&output, 0);
    assert!(stdout(&output).is_empty(), "{}", stdout(&output));
    assert!(
        stderr(&output).contains("Checked 6 archives") && stderr(&output).contains("all intact"),
        "{}",
        stderr(&output)
    );
    assert_same_tree(&before, &snapshot(&sandbox.cache));
}

#[test]
fn cache_verify_repair_renews_stamps_of_files_touched_but_not_changed() {
    let sandbox = warm_sandbox();
    let a_week_ago = SystemTime::now() - Duration::from_secs(7 * 24 * 3600);
    backdate_files_under(&sandbox.only_archive_tree(MANY), a_week_ago);
    let output = keel_cache(&sandbox, &["verify"]);
    assert_exit(&output, 0);
    assert_contains(&stderr(&output), "changed on disk but not in content");
    assert_exit(&keel_cache(&sandbox, &["verify", "--repair"]), 0);

    // Renewed: a default install trusts every file by its stamp again.
    let venv = sandbox.venv("after");
    let report = keel_installer::install(
        &[sandbox.wheel(bundled::MANY)],
        &keel_installer::InstallOptions::new(&venv, &sandbox.cache),
    )
    .expect("install");
    assert_eq!(report.files_hashed, 0, "{report:?}");
    assert!(report.repaired.is_empty());
}

#[test]
fn cache_verify_json_report_is_parsed_back() {
    let sandbox = warm_sandbox();
    fs_err::File::create(archive_file(&sandbox, HELLO, HELLO_INIT)).expect("truncate");
    let output = keel_cache(&sandbox, &["verify", "--json"]);
    assert_exit(&output, 1);
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    assert_eq!(report["healthy"], false);
    assert_eq!(
        report["cache"].as_str(),
        Some(sandbox.cache.to_str().expect("utf-8"))
    );
    let archives = report["archives"].as_array().expect("archives");
    assert_eq!(archives.len(), 6);
    let hello: Vec<&serde_json::Value> = archives
        .iter()
        .filter(|a| a["wheel"] == bundled::HELLO_V1)
        .collect();
    assert_eq!(hello.len(), 1);
    let hello = hello[0];
    assert_eq!(hello["damaged"][0]["entry"], HELLO_INIT);
    assert!(
        hello["damaged"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("0 bytes instead of")),
        "{hello}"
    );
    assert_eq!(
        hello["wheel_path"].as_str(),
        Some(sandbox.wheel(bundled::HELLO_V1).to_str().expect("utf-8"))
    );
    assert!(
        hello["archive"]
            .as_str()
            .is_some_and(|a| a.starts_with("keel-demo-hello/"))
    );
    assert!(hello["repair"].is_null());
    for other in archives.iter().filter(|a| a["wheel"] != bundled::HELLO_V1) {
        assert_eq!(
            other["damaged"].as_array().map(Vec::len),
            Some(0),
            "{other}"
        );
        assert!(other["files"].as_u64().is_some_and(|n| n > 0), "{other}");
    }

    let repaired = keel_cache(&sandbox, &["verify", "--repair", "--json"]);
    assert_exit(&repaired, 0);
    let report: serde_json::Value = serde_json::from_str(&stdout(&repaired)).expect("JSON");
    assert_eq!(report["healthy"], true);
    let action = report["archives"]
        .as_array()
        .expect("archives")
        .iter()
        .find(|a| a["wheel"] == bundled::HELLO_V1)
        .map(|a| a["repair"]["action"].clone());
    assert_eq!(action, Some(serde_json::json!("reextracted")));
}

#[test]
fn cache_commands_of_an_empty_or_missing_cache_succeed() {
    let sandbox = Sandbox::new();
    for args in [&["verify"][..], &["prune"], &["size"], &["clean"], &["dir"]] {
        let output = keel_cache(&sandbox, args);
        assert_exit(&output, 0);
    }
    assert!(!sandbox.cache.exists(), "no command created the cache");
    let dir = keel_cache(&sandbox, &["dir"]);
    assert_eq!(stdout(&dir).trim(), sandbox.cache.to_str().expect("utf-8"));
}

#[test]
fn cache_size_counts_every_file() {
    let sandbox = warm_sandbox();
    let (files, _) = count_files(&sandbox.cache);
    let output = keel_cache(&sandbox, &["size"]);
    assert_exit(&output, 0);
    assert_contains(&stdout(&output), &format!("({files} files)"));
}

#[test]
fn cache_commands_use_keel_cache_dir_when_no_cache_dir_is_given() {
    let sandbox = warm_sandbox();
    let elsewhere = sandbox.path().join("elsewhere");
    let run_cache = |args: &[&str]| {
        let mut command = keel();
        command
            .arg("cache")
            .args(args)
            .env("KEEL_CACHE_DIR", &sandbox.cache)
            .env("XDG_CACHE_HOME", &elsewhere);
        run(&mut command)
    };
    let dir = run_cache(&["dir"]);
    assert_exit(&dir, 0);
    assert_eq!(stdout(&dir).trim(), sandbox.cache.to_str().expect("utf-8"));
    assert_exit(&run_cache(&["verify"]), 0);
    assert_exit(&run_cache(&["prune"]), 0);
    let (files, _) = count_files(&sandbox.cache);
    let clean = run_cache(&["clean"]);
    assert_exit(&clean, 0);
    assert_eq!(reported_files(&clean), files);
    assert!(!sandbox.cache.exists());
    assert!(!elsewhere.exists());
}
