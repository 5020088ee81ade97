//! Writes the seed corpora of the fuzz targets into `DIR` (default
//! `corpus`): every bundled fixture wheel and every hostile wheel of
//! `keel_fixtures::hostile` for `wheel_reader`, and the `.dist-info` text
//! files of the bundled wheels for `text_parsers`.
//!
//! ```text
//! cargo run --example seeds -- corpus
//! ```

use std::path::PathBuf;

use keel_wheel::WheelArchive;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "corpus".into()));
    let wheels = root.join("wheel_reader");
    let texts = root.join("text_parsers");
    fs_err::create_dir_all(&wheels)?;
    fs_err::create_dir_all(&texts)?;

    let scratch = tempfile::tempdir()?;
    let bundled = keel_fixtures::build_bundled(&scratch.path().join("bundled"))?;
    for wheel in &bundled {
        let name = wheel.file_name().ok_or("no file name")?.to_string_lossy();
        fs_err::copy(wheel, wheels.join(format!("bundled-{name}")))?;
        // The texts the parsers read: RECORD, WHEEL, METADATA, entry_points.txt.
        let archive = WheelArchive::open(wheel)?;
        let out = scratch.path().join(format!("tree-{name}"));
        fs_err::create_dir(&out)?;
        archive.extract(&out)?;
        for file in ["RECORD", "WHEEL", "METADATA", "entry_points.txt"] {
            let path = out.join(archive.dist_info()).join(file);
            if path.exists() {
                fs_err::copy(&path, texts.join(format!("{name}-{file}")))?;
            }
        }
        fs_err::write(texts.join(format!("{name}-filename")), name.as_bytes())?;
    }
    for case in keel_fixtures::hostile::corpus() {
        fs_err::write(wheels.join(format!("hostile-{}", case.name)), case.bytes()?)?;
    }
    println!("seeded {} and {}", wheels.display(), texts.display());
    Ok(())
}
