//! `Cache::verify` end to end: what it reports of intact, restamped,
//! damaged, dangling and unreadable entries, in which order, and what
//! `--repair` does about each.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use keel_cache::maintenance::{ArchiveReport, DamagedFile, RepairAction, VerifyReport};
use keel_cache::{Archive, ArchiveProblem, Cache, WheelSource};
use keel_fixtures::WheelBuilder;
use keel_wheel::FileProblem;

fn wheel(dir: &Path, name: &str) -> WheelSource {
    let path = WheelBuilder::new(name, "1.0")
        .file(&format!("{name}/__init__.py"), format!("NAME = '{name}'\n"))
        .file(&format!("{name}/core.py"), "def f():\n    return 1\n")
        .build(dir)
        .expect("build the wheel");
    WheelSource::new(&path).expect("stat the wheel")
}

fn unpack(cache: &Cache, source: &WheelSource, stale: Option<&str>) -> Archive {
    let _lock = cache.lock_shared().expect("lock");
    cache.unpack(source, stale).expect("unpack").into_archive()
}

/// The report of an archive whose every file checked out.
fn intact(
    cache: &Cache,
    source: &WheelSource,
    archive: &Archive,
    restamped: usize,
) -> ArchiveReport {
    ArchiveReport {
        wheel: source.filename.to_string(),
        pointer: pointer_of(cache, source),
        archive: Some(archive.id.clone()),
        wheel_path: Some(source.path.clone()),
        files: archive.manifest.files.len(),
        bytes: archive.manifest.files.iter().map(|f| f.size).sum(),
        problem: None,
        damaged: Vec::new(),
        restamped,
        repair: None,
    }
}

fn pointer_of(cache: &Cache, source: &WheelSource) -> PathBuf {
    cache.pointer_path(source)
}

fn reextracted(entry: &ArchiveReport) -> String {
    match &entry.repair {
        Some(RepairAction::Reextracted { from, archive }) => {
            assert_eq!(Some(from), entry.wheel_path.as_ref());
            archive.clone()
        }
        other => panic!("{} was not re-extracted: {other:?}", entry.wheel),
    }
}

#[test]
fn verify_reports_every_kind_of_damage_and_repair_mends_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wheels = dir.path().join("wheels");
    let cache = Cache::open(&dir.path().join("cache")).expect("open the cache");

    // alpha: intact, one file touched (its stamp no longer holds).
    let alpha = wheel(&wheels, "alpha");
    let alpha_archive = unpack(&cache, &alpha, None);
    let touched = fs_err::File::open(alpha_archive.tree().join("alpha/core.py")).expect("open");
    touched
        .file()
        .set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000))
        .expect("touch");

    // beta: unpacked twice (the first archive a leftover), the second
    // archive's file edited in place.
    let beta = wheel(&wheels, "beta");
    let beta_leftover = unpack(&cache, &beta, None);
    let beta_archive = unpack(&cache, &beta, Some(&beta_leftover.id));
    assert_ne!(beta_leftover.id, beta_archive.id);
    fs_err::write(
        beta_archive.tree().join("beta/__init__.py"),
        "NAME = 'BETA'\n",
    )
    .expect("edit");

    // delta: a file deleted, and the wheel gone.
    let delta = wheel(&wheels, "delta");
    let delta_archive = unpack(&cache, &delta, None);
    fs_err::remove_file(delta_archive.tree().join("delta/core.py")).expect("delete");
    fs_err::remove_file(&delta.path).expect("delete the wheel");

    // epsilon: its pointer garbled; its archive unreferenced but readable.
    let epsilon = wheel(&wheels, "epsilon");
    let epsilon_archive = unpack(&cache, &epsilon, None);
    fs_err::write(pointer_of(&cache, &epsilon), "not json").expect("garble");

    // gamma: its whole archive gone.
    let gamma = wheel(&wheels, "gamma");
    let gamma_archive = unpack(&cache, &gamma, None);
    fs_err::remove_dir_all(&gamma_archive.dir).expect("delete the archive");

    let report = cache.verify(false).expect("verify");
    let mut beta_report = intact(&cache, &beta, &beta_archive, 0);
    beta_report.damaged = vec![DamagedFile {
        entry: "beta/__init__.py".into(),
        problem: FileProblem::Hash,
        reason: "content does not match RECORD".into(),
    }];
    // Damaged files count among the files checked, and their bytes too.
    let mut delta_report = intact(&cache, &delta, &delta_archive, 0);
    delta_report.damaged = vec![DamagedFile {
        entry: "delta/core.py".into(),
        problem: FileProblem::Missing,
        reason: "missing".into(),
    }];
    let epsilon_report = ArchiveReport {
        archive: None,
        files: 0,
        bytes: 0,
        problem: Some(ArchiveProblem::PointerMalformed {
            pointer: pointer_of(&cache, &epsilon),
        }),
        ..intact(&cache, &epsilon, &epsilon_archive, 0)
    };
    let gamma_report = ArchiveReport {
        files: 0,
        bytes: 0,
        problem: Some(ArchiveProblem::ArchiveGone {
            archive: gamma_archive.dir.clone(),
        }),
        ..intact(&cache, &gamma, &gamma_archive, 0)
    };
    let mut unreferenced = vec![beta_leftover.id.clone(), epsilon_archive.id.clone()];
    unreferenced.sort();
    let expected = VerifyReport {
        cache: cache.root().to_path_buf(),
        archives: vec![
            intact(&cache, &alpha, &alpha_archive, 1),
            beta_report,
            delta_report,
            epsilon_report,
            gamma_report,
        ],
        unreferenced,
    };
    assert_eq!(report, expected);
    assert_eq!(report.damaged(), 4);
    assert!(!report.is_healthy());

    // A check changes nothing: the same report again.
    assert_eq!(cache.verify(false).expect("verify again"), expected);

    let repaired = cache.verify(true).expect("repair");
    let mut expected_repaired = expected.clone();
    expected_repaired.unreferenced.clear();
    let [_, beta_r, delta_r, epsilon_r, gamma_r] = &repaired.archives[..] else {
        panic!("five archives: {repaired:?}");
    };
    let beta_fresh = reextracted(beta_r);
    let epsilon_fresh = reextracted(epsilon_r);
    let gamma_fresh = reextracted(gamma_r);
    let wheel_gone = format!("its wheel `{}` is gone", delta.path.display());
    assert_eq!(
        delta_r.repair,
        Some(RepairAction::Forgotten { reason: wheel_gone })
    );
    // alpha was intact: no repair, only its stamp renewed (seen below).
    let repairs = [
        None,
        beta_r.repair.clone(),
        delta_r.repair.clone(),
        epsilon_r.repair.clone(),
        gamma_r.repair.clone(),
    ];
    for (entry, repair) in expected_repaired.archives.iter_mut().zip(repairs) {
        entry.repair = repair;
    }
    assert_eq!(repaired, expected_repaired);
    assert!(repaired.is_healthy());

    // The leftovers and the damaged archives are gone, the fresh ones in use.
    for gone in [
        &beta_leftover.dir,
        &beta_archive.dir,
        &delta_archive.dir,
        &epsilon_archive.dir,
    ] {
        assert!(!gone.exists(), "{} is still there", gone.display());
    }
    assert!(!pointer_of(&cache, &delta).exists());
    assert!(!cache.root().join("pointers-v1/delta").exists());

    // Afterwards: every archive intact, alpha's stamp renewed.
    let after = cache.verify(false).expect("verify after the repair");
    assert!(after.is_healthy(), "{after:?}");
    assert_eq!(after.damaged(), 0);
    assert!(after.unreferenced.is_empty(), "{after:?}");
    let summary: Vec<(&str, Option<&str>, usize)> = after
        .archives
        .iter()
        .map(|a| (a.wheel.as_str(), a.archive.as_deref(), a.restamped))
        .collect();
    let names = |s: &WheelSource| s.filename.to_string();
    let (a, b, e, g) = (names(&alpha), names(&beta), names(&epsilon), names(&gamma));
    assert_eq!(
        summary,
        vec![
            (a.as_str(), Some(alpha_archive.id.as_str()), 0),
            (b.as_str(), Some(beta_fresh.as_str()), 0),
            (e.as_str(), Some(epsilon_fresh.as_str()), 0),
            (g.as_str(), Some(gamma_fresh.as_str()), 0),
        ]
    );
}

#[test]
fn verify_of_no_cache_is_an_empty_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("nothing-here");
    let report = Cache::at(&root)
        .expect("cache")
        .verify(true)
        .expect("verify");
    assert_eq!(
        report,
        VerifyReport {
            cache: root.clone(),
            ..VerifyReport::default()
        }
    );
    assert!(!root.exists(), "verify of no cache creates nothing");
}
