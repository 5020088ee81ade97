//! TEMPORARY: records the outcome of open + extract for many hostile and
//! mutated wheels, so that the refactor can be checked to change nothing.

use std::fmt::Write as _;
use std::path::Path;

use keel_fixtures::{WheelBuilder, hostile};
use keel_wheel::{Limits, WheelArchive};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn outcome(work: &Path, filename: &str, bytes: &[u8], limits: Limits) -> String {
    let _ = fs_err::remove_dir_all(work);
    fs_err::create_dir_all(work.join("w")).unwrap();
    let wheel = work.join("w").join(filename);
    fs_err::write(&wheel, bytes).unwrap();
    let result = WheelArchive::open_with_limits(&wheel, limits).and_then(|archive| {
        let out = work.join("out");
        fs_err::create_dir(&out).unwrap();
        archive.extract(&out).map(|files| {
            files
                .into_iter()
                .map(|f| format!("{} {} {}", f.path, f.hash, f.size))
                .collect::<Vec<_>>()
        })
    });
    match result {
        Ok(files) => format!("OK {files:?}"),
        Err(e) => format!("ERR {e:?}"),
    }
}

fn limit_sets() -> Vec<Limits> {
    vec![
        Limits::default(),
        Limits {
            max_file_size: 40,
            ..Limits::default()
        },
        Limits {
            max_total_size: 150,
            ..Limits::default()
        },
        Limits {
            max_ratio: 1,
            ..Limits::default()
        },
    ]
}

type Knob = fn(WheelBuilder) -> WheelBuilder;

fn knobs() -> Vec<(&'static str, Knob)> {
    vec![
        ("unlisted", |b| b.unlisted_file("keel_hostile/evil.py", "x")),
        ("dup", |b| {
            b.duplicate_entry("keel_hostile/__init__.py", "y")
        }),
        ("symlink", |b| b.symlink("keel_hostile/link", "/etc/passwd")),
        ("traversal", |b| b.file("../evil.py", "x")),
        ("backslash", |b| b.file("keel_hostile\\e.py", "x")),
        ("datakey", |b| {
            b.file("keel_hostile-1.0.data/etc/passwd", "x")
        }),
        ("datafile", |b| b.file("keel_hostile-1.0.data", "x")),
        ("scriptbad", |b| {
            b.file("keel_hostile-1.0.data/scripts/a\u{1}b", "x")
        }),
        ("scriptok", |b| {
            b.executable("keel_hostile-1.0.data/scripts/tool", "#!/bin/sh\n")
        }),
        ("nometa", |b| b.omit_metadata()),
        ("norecord", |b| b.omit_record()),
        ("nowheel", |b| b.omit_wheel_file()),
        ("wv2", |b| b.wheel_version("2.0")),
        ("wv19", |b| b.wheel_version("1.9")),
        ("fileinfile", |b| b.file("keel_hostile/a.py/b.py", "x")),
        ("dir", |b| b.directory("keel_hostile/sub")),
        ("baddir", |b| b.directory("../up")),
        ("second_distinfo", |b| {
            b.file("other-1.0.dist-info/METADATA", "x")
        }),
        ("zeros", |b| b.zeros_file("keel_hostile/zeros.bin", 2 << 20)),
        ("big", |b| b.file("keel_hostile/big.txt", vec![b'a'; 100])),
        ("ep_bad", |b| {
            b.entry_points("[console_scripts]\na/b = keel_hostile.a:main\n")
        }),
        ("ep_malformed", |b| {
            b.entry_points("[console_scripts]\nx = y\n")
        }),
        ("meta_ver", |b| {
            b.file(
                "keel_hostile-1.0.dist-info/METADATA",
                "Metadata-Version: 2.1\nName: keel-hostile\nVersion: 6.6\n",
            )
        }),
        ("meta_name", |b| {
            b.file(
                "keel_hostile-1.0.dist-info/METADATA",
                "Metadata-Version: 2.1\nName: other\nVersion: 1.0\n",
            )
        }),
        ("rec_ghost", |b| {
            b.override_record(|r| {
                format!("{r}keel_hostile/ghost.py,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,0\n")
            })
        }),
        ("rec_md5", |b| {
            b.override_record(|r| r.replacen(",sha256=", ",md5=", 1))
        }),
        ("rec_size", |b| {
            b.override_record(|r| r.replacen(",6\n", ",7\n", 1))
        }),
        ("rec_nohash", |b| {
            b.override_record(|r| {
                r.lines()
                    .map(|l| {
                        if l.starts_with("keel_hostile/a.py,") {
                            let mut p = l.split(',');
                            format!("{},,{}", p.next().unwrap(), p.nth(1).unwrap())
                        } else {
                            l.to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
                    + "\n"
            })
        }),
        ("rec_dup", |b| {
            b.override_record(|r| {
                let first = r.lines().next().unwrap().to_string();
                format!("{r}{first}\n")
            })
        }),
        ("rec_unsafe", |b| {
            b.override_record(|r| format!("{r}../x,,\n"))
        }),
        ("rec_hash", |b| {
            b.override_record(|r| r.replacen("sha256=", "sha256=AAAA", 1))
        }),
        ("rec_hash_wrong", |b| {
            b.override_record(|r| {
                r.replacen(
                    "sha256=",
                    "sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,X",
                    0,
                )
                .lines()
                .map(|l| {
                    if l.starts_with("keel_hostile/__init__.py,") {
                        "keel_hostile/__init__.py,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,6".to_string()
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
                    + "\n"
            })
        }),
        ("rec_sig", |b| {
            b.unlisted_file("keel_hostile-1.0.dist-info/RECORD.jws", "sig")
        }),
    ]
}

#[test]
#[ignore]
fn record_outcomes() {
    let out_path = std::env::var("EQ_OUT").expect("EQ_OUT");
    let work = Path::new("/tmp/keel_eq_work");
    let mut report = String::new();
    let filename = hostile::FILENAME;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);

    // 1. The hostile corpus, and byte mutations of each case.
    for case in hostile::corpus() {
        let bytes = case.bytes().unwrap();
        for (li, limits) in limit_sets().into_iter().enumerate() {
            let o = outcome(work, &case.filename, &bytes, limits);
            writeln!(report, "corpus {} L{li}: {o}", case.name).unwrap();
        }
        if bytes.len() > 1 << 20 {
            continue;
        }
        for m in 0..60 {
            let mut b = bytes.clone();
            let flips = 1 + rng.below(3);
            for _ in 0..flips {
                let at = rng.below(b.len() as u64) as usize;
                b[at] = rng.next() as u8;
            }
            let o = outcome(work, &case.filename, &b, Limits::default());
            writeln!(report, "mut {} {m}: {o}", case.name).unwrap();
        }
    }

    // 2. Pairs and triples of builder knobs, in order.
    let knobs = knobs();
    let good = || hostile::good();
    for (i, (a, fa)) in knobs.iter().enumerate() {
        for (li, limits) in limit_sets().into_iter().enumerate() {
            let bytes = fa(good()).build_bytes().unwrap();
            let o = outcome(work, filename, &bytes, limits);
            writeln!(report, "knob {a} L{li}: {o}").unwrap();
        }
        for (j, (b, fb)) in knobs.iter().enumerate() {
            if i == j {
                continue;
            }
            let Ok(bytes) = fb(fa(good())).build_bytes() else {
                writeln!(report, "knob {a}+{b}: build failed").unwrap();
                continue;
            };
            for (li, limits) in limit_sets().into_iter().enumerate() {
                let o = outcome(work, filename, &bytes, limits);
                writeln!(report, "knob {a}+{b} L{li}: {o}").unwrap();
            }
        }
    }
    for t in 0..1500 {
        let n = 3 + rng.below(3);
        let mut builder = good();
        let mut label = String::new();
        for _ in 0..n {
            let (name, f) = &knobs[rng.below(knobs.len() as u64) as usize];
            builder = f(builder);
            label.push_str(name);
            label.push('+');
        }
        let Ok(bytes) = builder.build_bytes() else {
            writeln!(report, "combo {t} {label}: build failed").unwrap();
            continue;
        };
        let li = rng.below(4) as usize;
        let o = outcome(work, filename, &bytes, limit_sets()[li]);
        writeln!(report, "combo {t} {label} L{li}: {o}").unwrap();
    }
    let _ = fs_err::remove_dir_all(work);
    fs_err::write(out_path, report).unwrap();
}
