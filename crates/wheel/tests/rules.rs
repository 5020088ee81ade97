//! Every rule of `WheelArchive::open` and `extract`, each shown on a wheel
//! built to break it (and a well-formed wheel that passes them all).

use keel_fixtures::WheelBuilder;
use keel_wheel::{Error, Limits, Rule, WheelArchive};

fn good() -> WheelBuilder {
    WheelBuilder::new("demo", "1.0")
        .file("demo/__init__.py", "x = 1\n")
        .entry_points("[console_scripts]\ndemo = demo:main\n")
}

/// Builds the wheel and returns the rule `open` (then `extract`) refuses it for.
fn refusal(builder: WheelBuilder) -> (String, Rule) {
    refusal_with(builder, Limits::default())
}

fn refusal_with(builder: WheelBuilder, limits: Limits) -> (String, Rule) {
    let dir = tempfile::tempdir().unwrap();
    let wheel = builder.build(dir.path()).unwrap();
    let result = WheelArchive::open_with_limits(&wheel, limits).and_then(|archive| {
        let out = dir.path().join("out");
        fs_err::create_dir(&out).unwrap();
        archive.extract(&out).map(|_| ())
    });
    match result {
        Err(Error::Invalid {
            wheel: named,
            violation,
        }) => {
            assert_eq!(named, wheel, "the error names the wheel");
            (violation.entry, violation.rule)
        }
        other => panic!("expected a rule violation, got {other:?}"),
    }
}

#[test]
fn a_well_formed_wheel_opens_and_extracts_every_file_verified() {
    let dir = tempfile::tempdir().unwrap();
    let wheel = good().build(dir.path()).unwrap();
    let archive = WheelArchive::open(&wheel).unwrap();
    assert_eq!(archive.metadata().name, "demo");
    assert_eq!(archive.entry_points().scripts.len(), 1);
    let out = dir.path().join("out");
    fs_err::create_dir(&out).unwrap();
    let files = archive.extract(&out).unwrap();
    assert_eq!(files.len(), archive.record().len());
    assert_eq!(
        fs_err::read_to_string(out.join("demo/__init__.py")).unwrap(),
        "x = 1\n"
    );
}

#[test]
fn content_that_disagrees_with_record_is_refused_naming_the_entry() {
    let (entry, rule) = refusal(
        good().override_record(|r| r.replace("x = 1", "").replacen("sha256=", "sha256=AAAA", 1)),
    );
    assert!(!entry.is_empty());
    assert!(
        matches!(
            rule,
            Rule::HashMismatch { .. } | Rule::MalformedRecordRow { .. }
        ),
        "{rule:?}"
    );
}

#[test]
fn a_file_missing_from_record_is_refused() {
    assert_eq!(
        refusal(good().unlisted_file("demo/evil.py", "x")),
        ("demo/evil.py".into(), Rule::NotInRecord)
    );
}

#[test]
fn a_record_row_for_a_missing_file_is_refused() {
    let (entry, rule) = refusal(good().override_record(|r| {
        format!("{r}demo/ghost.py,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,0\n")
    }));
    assert_eq!(
        (entry.as_str(), rule),
        ("demo/ghost.py", Rule::MissingFromArchive)
    );
}

#[test]
fn duplicate_entries_hidden_by_the_zip_reader_are_refused() {
    let (entry, rule) = refusal(good().duplicate_entry("demo/__init__.py", "y = 2\n"));
    assert_eq!(
        (entry.as_str(), rule),
        ("demo/__init__.py", Rule::Duplicate)
    );
}

#[test]
fn symlink_entries_are_refused() {
    let (entry, rule) = refusal(good().symlink("demo/link", "/etc/passwd"));
    assert_eq!((entry.as_str(), rule), ("demo/link", Rule::NotARegularFile));
}

#[test]
fn path_traversal_and_absolute_paths_are_refused() {
    for path in [
        "../evil.py",
        "/etc/evil",
        "demo/../../evil.py",
        "demo\\evil.py",
        "C:/evil.py",
    ] {
        let (entry, rule) = refusal(good().file(path, "x"));
        assert_eq!(entry, path);
        assert!(matches!(rule, Rule::UnsafePath(_)), "{path}: {rule:?}");
    }
}

#[test]
fn unknown_data_keys_and_a_file_named_like_the_data_dir_are_refused() {
    let builder = good();
    let data = builder.data_dir();
    let (_, rule) = refusal(good().file(&format!("{data}/etc/passwd"), "x"));
    assert_eq!(rule, Rule::UnknownDataKey("etc".into()));
    let (entry, rule) = refusal(good().file(&data, "x"));
    assert_eq!(entry, data);
    assert!(matches!(rule, Rule::UnsafePath(_)));
}

#[test]
fn missing_dist_info_files_are_refused() {
    assert_eq!(refusal(good().omit_metadata()).1, Rule::MissingDistInfoFile);
    assert_eq!(refusal(good().omit_record()).1, Rule::MissingDistInfoFile);
    assert_eq!(
        refusal(good().omit_wheel_file()).1,
        Rule::MissingDistInfoFile
    );
}

#[test]
fn wheel_version_two_is_refused() {
    assert_eq!(
        refusal(good().wheel_version("2.0")).1,
        Rule::UnsupportedWheelVersion("2.0".into())
    );
}

#[test]
fn weak_hashes_are_refused() {
    let (_, rule) = refusal(good().override_record(|r| {
        r.replacen("sha256=47DEQ", "md5=47DEQ", 1)
            .replacen(",sha256=", ",md5=", 1)
    }));
    assert_eq!(rule, Rule::UnsupportedHash("md5".into()));
}

#[test]
fn a_metadata_version_other_than_the_file_names_is_refused() {
    let builder = WheelBuilder::new("demo", "1.0").file(
        "demo-1.0.dist-info/METADATA",
        "Metadata-Version: 2.1\nName: demo\nVersion: 6.6.6\n",
    );
    assert!(matches!(refusal(builder).1, Rule::VersionMismatch { .. }));
}

#[test]
fn zip_bombs_are_refused_by_ratio_and_by_size() {
    let (entry, rule) = refusal(good().zeros_file("demo/zeros.bin", 8 << 20));
    assert_eq!(entry, "demo/zeros.bin");
    assert!(matches!(rule, Rule::CompressionRatio { .. }), "{rule:?}");
    let small = Limits {
        max_file_size: 1000,
        ..Limits::default()
    };
    let (_, rule) = refusal_with(good().file("demo/big.txt", vec![b'a'; 2000]), small);
    assert!(
        matches!(rule, Rule::TooLarge { what: "file", .. }),
        "{rule:?}"
    );
    let tiny_total = Limits {
        max_total_size: 100,
        ..Limits::default()
    };
    let (_, rule) = refusal_with(good().file("demo/big.txt", vec![b'a'; 200]), tiny_total);
    assert!(
        matches!(rule, Rule::TooLarge { what: "wheel", .. }),
        "{rule:?}"
    );
}
