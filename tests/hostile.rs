//! Guarantee 4, *bad input never touches the environment*: every wheel of
//! the hostile corpus (`keel_fixtures::hostile`, one wheel per rule) is
//! refused with exit code 1 and an `error:` that names the wheel, the entry
//! and the rule, and the refusal leaves no trace anywhere.
//!
//! Each case gets its own sandbox: an environment with `keel-demo-hello`
//! 1.0.0 installed, then `keel install <hello 2.0.0> <hostile wheel>`. The
//! good upgrade beside the bad wheel must not land either (all or nothing);
//! the environment must be byte for byte as it was, nothing may appear in
//! the sandbox outside the environment and the cache (nor at the absolute
//! paths the corpus aims at), and the cache must hold no archive, pointer or
//! temporary directory of the hostile wheel.
//!
//! Then symlinks planted in the environment: keel replaces them or refuses,
//! and never writes (or removes) through them.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::*;
use keel_fixtures::{bundled, hostile};

/// A sandbox holding only the two wheels these tests install (hello 1.0.0
/// and 2.0.0), built once per test process.
fn sandbox() -> Sandbox {
    static HELLO: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    let hello = HELLO.get_or_init(|| {
        ["hello-1.0.0", "hello-2.0.0"]
            .into_iter()
            .map(|source| {
                let builder = keel_fixtures::builder_from_source(
                    &keel_fixtures::bundled_sources_dir().join(source),
                )
                .expect("hello source");
                (
                    builder.filename(),
                    builder.build_bytes().expect("build hello"),
                )
            })
            .collect()
    });
    let sandbox = Sandbox::without_wheels("keel-test-");
    fs_err::create_dir(&sandbox.wheels).expect("mkdir");
    for (name, bytes) in hello {
        fs_err::write(sandbox.wheel(name), bytes).expect("write wheel");
    }
    sandbox
}

/// Snapshot of everything in the sandbox except the cache and `venv`.
fn outside(sandbox: &Sandbox, venv: &Path) -> BTreeMap<PathBuf, Node> {
    let cache = sandbox.cache.strip_prefix(sandbox.path()).expect("cache");
    let venv = venv.strip_prefix(sandbox.path()).expect("venv");
    snapshot(sandbox.path())
        .into_iter()
        .filter(|(path, _)| !path.starts_with(cache) && !path.starts_with(venv))
        .collect()
}

/// Entries of `/tmp` that a hostile wheel aimed at with an absolute path.
fn absolute_targets() -> Vec<PathBuf> {
    let target = Path::new(hostile::ABSOLUTE_TARGET);
    let (dir, prefix) = (
        target.parent().expect("parent"),
        target.file_name().expect("name").to_string_lossy(),
    );
    fs_err::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(&*prefix))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// The entries of a directory; none if it does not exist.
fn children(dir: &Path) -> Vec<PathBuf> {
    match fs_err::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.expect("read_dir").path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// Installs hello 2.0.0 and the hostile wheel `id` over hello 1.0.0 and
/// checks the refusal left no trace.
fn assert_refused(id: &str) {
    let case = hostile::case(id).unwrap_or_else(|| panic!("no hostile wheel {id}"));
    let sandbox = sandbox();
    let venv = sandbox.venv("venv");
    assert_success(&sandbox.install(&venv, &[&sandbox.wheel(bundled::HELLO_V1)]));
    let wheel = case
        .write(&sandbox.path().join("hostile"))
        .unwrap_or_else(|e| panic!("{id}: cannot build the wheel: {e}"));

    let venv_before = snapshot(&venv);
    let outside_before = outside(&sandbox, &venv);
    let output = sandbox.install(&venv, &[&sandbox.wheel(bundled::HELLO_V2), &wheel]);
    let err = stderr(&output);

    assert_eq!(
        output.status.code(),
        Some(1),
        "{id}: keel must refuse {}\nstdout:\n{}\nstderr:\n{err}",
        wheel.display(),
        stdout(&output)
    );
    assert!(err.starts_with("error:"), "{id}: {err}");
    assert!(!err.contains("panicked"), "{id}: {err}");
    assert!(
        err.contains(&wheel.display().to_string()),
        "{id}: the error must name the wheel {}:\n{err}",
        wheel.display()
    );
    // A hostile name must not reach the terminal raw: an escape sequence
    // could clear the screen or forge output, a line break forge a line.
    assert!(
        err.chars().all(|c| c == '\n' || !c.is_control()),
        "{id}: the error prints a control character raw:\n{err:?}"
    );
    let entry = &case.expected_entry;
    if entry.chars().any(char::is_control) {
        assert!(!err.contains(entry.as_str()), "{id}: {err:?}");
        // However keel escapes it, the printable parts of the name show.
        for part in entry.split(char::is_control).filter(|p| p.len() > 2) {
            assert!(
                err.contains(part),
                "{id}: the error must name the entry {entry:?}:\n{err}"
            );
        }
    } else if !entry.is_empty() {
        assert!(
            err.contains(&format!("`{entry}`")),
            "{id}: the error must name the entry {entry:?}:\n{err}"
        );
    }
    assert!(
        err.contains(case.expected_words),
        "{id}: the error must say {:?}:\n{err}",
        case.expected_words
    );

    assert_same_tree(&venv_before, &snapshot(&venv));
    assert_same_tree(&outside_before, &outside(&sandbox, &venv));
    assert_eq!(absolute_targets(), Vec::<PathBuf>::new(), "{id}");

    let name = "keel-hostile";
    assert_eq!(
        sandbox.archives(name),
        Vec::<PathBuf>::new(),
        "{id}: an archive of the refused wheel is in the cache"
    );
    assert_eq!(
        children(&sandbox.cache.join("pointers-v1").join(name)),
        Vec::<PathBuf>::new(),
        "{id}: a pointer to the refused wheel is in the cache"
    );
    assert_eq!(
        children(&sandbox.cache.join("tmp")),
        Vec::<PathBuf>::new(),
        "{id}: an unpack of the refused wheel was left in the cache"
    );
}

/// One `#[test]` per corpus case, and a test that no case was forgotten.
macro_rules! hostile_tests {
    ($($test:ident => $id:literal,)*) => {
        $(
            #[test]
            fn $test() {
                assert_refused($id);
            }
        )*

        #[test]
        fn every_corpus_case_has_a_test() {
            let tested: std::collections::BTreeSet<&str> = [$($id),*].into_iter().collect();
            let corpus: std::collections::BTreeSet<&str> =
                hostile::corpus().iter().map(|case| case.name).collect();
            assert_eq!(tested, corpus);
        }
    };
}

hostile_tests! {
    zip_not_a_zip => "zip-not-a-zip",
    zip_truncated => "zip-truncated",
    zip_local_name_differs => "zip-local-name-differs",
    zip_local_method_differs => "zip-local-method-differs",
    zip_duplicate_name => "zip-duplicate-name",
    zip_nul_in_name => "zip-nul-in-name",
    zip_newline_in_name => "zip-newline-in-name",
    zip_escape_in_name => "zip-escape-in-name",
    zip_file_inside_a_file => "zip-file-inside-a-file",
    zip_unsupported_compression => "zip-unsupported-compression",
    zip_symlink => "zip-symlink",
    zip_encrypted => "zip-encrypted",
    zip_overlapping => "zip-overlapping",
    zip_overlapping_offset => "zip-overlapping-offset",
    zip_bomb_ratio => "zip-bomb-ratio",
    zip_declared_size_lie => "zip-declared-size-lie",
    path_absolute => "path-absolute",
    path_dotdot => "path-dotdot",
    path_dotdot_nested => "path-dotdot-nested",
    path_backslash => "path-backslash",
    path_drive_letter => "path-drive-letter",
    path_dist_info_dotdot => "path-dist-info-dotdot",
    data_purelib_dotdot => "data-purelib-dotdot",
    data_scripts_dotdot => "data-scripts-dotdot",
    data_data_absolute => "data-data-absolute",
    data_headers_backslash => "data-headers-backslash",
    data_data_drive_letter => "data-data-drive-letter",
    entry_point_dotdot => "entry-point-dotdot",
    entry_point_absolute => "entry-point-absolute",
    entry_point_backslash => "entry-point-backslash",
    entry_point_python => "entry-point-python",
    entry_point_python3 => "entry-point-python3",
    entry_point_python3_11 => "entry-point-python3.11",
    entry_point_activate => "entry-point-activate",
    data_scripts_python3 => "data-scripts-python3",
    data_data_bin_python => "data-data-bin-python",
    data_data_pyvenv_cfg => "data-data-pyvenv-cfg",
    record_row_dotdot => "record-row-dotdot",
    record_row_absolute => "record-row-absolute",
    record_missing => "record-missing",
    record_unlisted_file => "record-unlisted-file",
    record_listed_file_missing => "record-listed-file-missing",
    record_hash_mismatch => "record-hash-mismatch",
    record_size_mismatch => "record-size-mismatch",
    record_md5 => "record-md5",
    record_sha1 => "record-sha1",
    record_unknown_algorithm => "record-unknown-algorithm",
    record_two_fields => "record-two-fields",
    record_size_not_a_number => "record-size-not-a-number",
    record_no_hash => "record-no-hash",
    record_duplicate_row => "record-duplicate-row",
    meta_no_dist_info => "meta-no-dist-info",
    meta_two_dist_infos => "meta-two-dist-infos",
    meta_dist_info_name_mismatch => "meta-dist-info-name-mismatch",
    meta_dist_info_version_mismatch => "meta-dist-info-version-mismatch",
    meta_metadata_name_mismatch => "meta-metadata-name-mismatch",
    meta_metadata_version_mismatch => "meta-metadata-version-mismatch",
    meta_wheel_version_2 => "meta-wheel-version-2",
    meta_wheel_file_missing => "meta-wheel-file-missing",
    meta_metadata_missing => "meta-metadata-missing",
    meta_unknown_data_key => "meta-unknown-data-key",
    meta_file_named_like_data_dir => "meta-file-named-like-data-dir",
    meta_file_directly_in_data_dir => "meta-file-directly-in-data-dir",
}

// ---------------------------------------------------------------------------
// Symlinks planted in the environment
// ---------------------------------------------------------------------------

/// A directory outside the environment with one precious file, and its snapshot.
fn precious_dir(sandbox: &Sandbox) -> (PathBuf, BTreeMap<PathBuf, Node>) {
    let dir = sandbox.path().join("outside");
    fs_err::create_dir(&dir).expect("mkdir");
    fs_err::write(dir.join("precious.txt"), "do not touch\n").expect("write");
    fs_err::write(dir.join("__init__.py"), "raise SystemExit('hijacked')\n").expect("write");
    let before = snapshot(&dir);
    (dir, before)
}

/// Either keel replaced the planted symlink (the install succeeded and the
/// path is a real directory or file now), or it refused with a clear error
/// and left the environment as it was. Never did it write through the link.
#[track_caller]
fn assert_replaced_or_refused(
    output: &std::process::Output,
    venv: &Path,
    venv_before: &BTreeMap<PathBuf, Node>,
    link: &Path,
) {
    if output.status.success() {
        let metadata = fs_err::symlink_metadata(link).expect("lstat");
        assert!(
            !metadata.file_type().is_symlink(),
            "{} is still a symlink after the install",
            link.display()
        );
        assert_environment_matches_record(venv);
    } else {
        let err = stderr(output);
        assert_eq!(output.status.code(), Some(1), "{err}");
        assert!(err.starts_with("error:"), "{err}");
        assert!(err.contains(&link.display().to_string()), "{err}");
        assert_same_tree(venv_before, &snapshot(venv));
    }
}

#[test]
fn a_symlink_planted_at_a_package_directory_is_never_written_through() {
    let sandbox = sandbox();
    let venv = sandbox.venv("venv");
    let (outside, outside_before) = precious_dir(&sandbox);
    let link = site_packages(&venv).join("keel_demo_hello");
    fs_err::os::unix::fs::symlink(&outside, &link).expect("symlink");
    let venv_before = snapshot(&venv);

    let output = sandbox.install(&venv, &[&sandbox.wheel(bundled::HELLO_V1)]);
    assert_same_tree(&outside_before, &snapshot(&outside));
    assert_replaced_or_refused(&output, &venv, &venv_before, &link);
    if output.status.success() {
        assert_eq!(
            script(&venv, "keel-hello", &[]),
            "hello from keel_demo_hello 1.0.0\n"
        );
    }
}

#[test]
fn a_symlink_planted_at_a_script_is_never_written_through() {
    let sandbox = sandbox();
    let venv = sandbox.venv("venv");
    let (outside, outside_before) = precious_dir(&sandbox);
    let link = venv.join("bin/keel-hello");
    fs_err::os::unix::fs::symlink(outside.join("precious.txt"), &link).expect("symlink");
    let venv_before = snapshot(&venv);

    let output = sandbox.install(&venv, &[&sandbox.wheel(bundled::HELLO_V1)]);
    assert_same_tree(&outside_before, &snapshot(&outside));
    assert_replaced_or_refused(&output, &venv, &venv_before, &link);
}

#[test]
fn a_symlink_planted_at_the_dist_info_is_never_written_through() {
    let sandbox = sandbox();
    let venv = sandbox.venv("venv");
    let (outside, outside_before) = precious_dir(&sandbox);
    let link = site_packages(&venv).join("keel_demo_hello-1.0.0.dist-info");
    fs_err::os::unix::fs::symlink(&outside, &link).expect("symlink");
    let venv_before = snapshot(&venv);

    let output = sandbox.install(&venv, &[&sandbox.wheel(bundled::HELLO_V1)]);
    assert_same_tree(&outside_before, &snapshot(&outside));
    assert_replaced_or_refused(&output, &venv, &venv_before, &link);
}

#[test]
fn an_upgrade_never_removes_old_files_through_a_symlinked_directory() {
    let sandbox = sandbox();
    let venv = sandbox.venv("venv");
    assert_success(&sandbox.install(&venv, &[&sandbox.wheel(bundled::HELLO_V1)]));
    // Hello 1.0.0's RECORD lists keel_demo_hello/sub/util.py; 2.0.0 drops it.
    // Point `sub` elsewhere: removing 1.0.0 must not reach through it.
    let outside = sandbox.path().join("outside");
    fs_err::create_dir(&outside).expect("mkdir");
    fs_err::write(outside.join("util.py"), "precious = True\n").expect("write");
    fs_err::write(outside.join("__init__.py"), "").expect("write");
    let outside_before = snapshot(&outside);
    let sub = site_packages(&venv).join("keel_demo_hello/sub");
    fs_err::remove_dir_all(&sub).expect("rm sub");
    fs_err::os::unix::fs::symlink(&outside, &sub).expect("symlink");
    let venv_before = snapshot(&venv);

    let output = sandbox.install(&venv, &[&sandbox.wheel(bundled::HELLO_V2)]);
    assert_same_tree(&outside_before, &snapshot(&outside));
    assert_replaced_or_refused(&output, &venv, &venv_before, &sub);
}

#[test]
fn a_symlink_planted_at_the_keel_directory_is_never_written_through() {
    // `<venv>/.keel` holds the lock, the journal, staging and the backup of
    // replaced files: through a symlink they would all live elsewhere.
    let sandbox = sandbox();
    let venv = sandbox.venv("venv");
    let (outside, outside_before) = precious_dir(&sandbox);
    let link = venv.join(".keel");
    fs_err::os::unix::fs::symlink(&outside, &link).expect("symlink");
    let venv_before = snapshot(&venv);

    let output = sandbox.install(&venv, &[&sandbox.wheel(bundled::HELLO_V1)]);
    assert_same_tree(&outside_before, &snapshot(&outside));
    assert_replaced_or_refused(&output, &venv, &venv_before, &link);
}

// ---------------------------------------------------------------------------
// Size limits: configurable, and memory stays flat whatever the wheel
// ---------------------------------------------------------------------------

/// Bytes deflate cannot shrink (xorshift), so that only the size limits,
/// not the compression ratio, decide.
fn incompressible(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// `keel install --venv VENV --cache-dir CACHE FLAGS... WHEEL`.
fn install_with(
    sandbox: &Sandbox,
    venv: &Path,
    flags: &[&str],
    wheel: &Path,
) -> std::process::Output {
    run(keel_install(venv, &sandbox.cache).args(flags).arg(wheel))
}

#[test]
fn size_limits_are_set_on_the_command_line_and_refuse_before_anything_changes() {
    let sandbox = sandbox();
    let venv = sandbox.venv("venv");
    let big = "keel_hostile/big.bin";
    let wheel = hostile::good()
        .file(big, incompressible(2 << 20))
        .file("keel_hostile/other.bin", incompressible(600 << 10))
        .file("keel_hostile/text.txt", "keel ".repeat(300_000))
        .build(&sandbox.path().join("sized"))
        .expect("build");
    let before = snapshot(&venv);
    for (flags, entry, words) in [
        (
            &["--max-file-size", "1M"][..],
            big,
            "the file unpacks to 2097152 bytes, over the limit of 1048576 bytes",
        ),
        (&["--max-wheel-size", "2M"], "", "the wheel unpacks to"),
        (
            &["--max-compression-ratio", "20"],
            "keel_hostile/text.txt",
            "over the limit of 20:1",
        ),
    ] {
        let output = install_with(&sandbox, &venv, flags, &wheel);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{flags:?}: {err}");
        assert!(
            err.contains(&wheel.display().to_string()),
            "{flags:?}: {err}"
        );
        assert!(
            entry.is_empty() || err.contains(&format!("`{entry}`")),
            "{flags:?}: {err}"
        );
        assert!(err.contains(words), "{flags:?}: expected `{words}`:\n{err}");
        assert_same_tree(&before, &snapshot(&venv));
        assert_eq!(sandbox.archives("keel-hostile"), Vec::<PathBuf>::new());
        assert_eq!(children(&sandbox.cache.join("tmp")), Vec::<PathBuf>::new());
    }
    let bad = install_with(&sandbox, &venv, &["--max-file-size", "12X"], &wheel);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    // The defaults are generous: the same wheel installs.
    assert_success(&install_with(&sandbox, &venv, &[], &wheel));
    assert_environment_matches_record(&venv);
}

/// Peak resident memory of a child (`ru_maxrss` of the children, via
/// Python's `resource`), in KiB.
fn peak_rss_kib(command: &[&std::ffi::OsStr]) -> u64 {
    let script = "import resource, subprocess, sys\n\
                  r = subprocess.run(sys.argv[1:], capture_output=True)\n\
                  sys.stderr.buffer.write(r.stderr)\n\
                  print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n\
                  sys.exit(r.returncode)";
    let output = run(std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(command));
    assert_success(&output);
    stdout(&output).trim().parse().expect("ru_maxrss")
}

#[test]
fn memory_stays_flat_whatever_the_size_of_the_files_in_a_wheel() {
    let sandbox = sandbox();
    let venv = sandbox.venv("venv");
    let size = 96 << 20;
    let wheel = hostile::good()
        .file("keel_hostile/huge.bin", incompressible(size))
        .build(&sandbox.path().join("huge"))
        .expect("build");
    let keel = std::path::PathBuf::from(env!("CARGO_BIN_EXE_keel"));
    let args: Vec<&std::ffi::OsStr> = vec![
        keel.as_os_str(),
        "install".as_ref(),
        "--venv".as_ref(),
        venv.as_os_str(),
        "--cache-dir".as_ref(),
        sandbox.cache.as_os_str(),
        "--verify".as_ref(),
        wheel.as_os_str(),
    ];
    // Cold (unpack: inflate and hash), then warm with --verify (hash again).
    let cold = peak_rss_kib(&args);
    let warm_venv = sandbox.venv("warm");
    let mut warm_args = args.clone();
    warm_args[3] = warm_venv.as_os_str();
    let warm = peak_rss_kib(&warm_args);
    let limit = (size as u64 / 1024) / 4;
    assert!(
        cold < limit && warm < limit,
        "a {} MiB file made keel grow to {cold} KiB (cold) / {warm} KiB (warm); memory must not follow the file size",
        size >> 20
    );
    assert_environment_matches_record(&venv);
    assert_environment_matches_record(&warm_venv);
}
