//! Bytecode file names: which `__pycache__` file is the compiled form of
//! which source. One strict rule, shared by uninstall (which removes the
//! bytecode of removed modules) and `keel verify` (which accepts only that
//! bytecode as unlisted).
//!
//! PEP 3147: `pkg/__pycache__/{stem}.{cache_tag}.pyc`; PEP 488 adds
//! `{stem}.{cache_tag}.opt-{level}.pyc`. These are the only names
//! `importlib.util.source_from_cache` maps back to `pkg/{stem}.py`.

use std::path::{Path, PathBuf};

/// The source whose bytecode `path` is, if `path` is named as Python names
/// bytecode: `dir/__pycache__/stem.tag.pyc` or `…/stem.tag.opt-N.pyc` gives
/// `dir/stem.py`.
pub fn source_of(path: &Path) -> Option<PathBuf> {
    let cache = path.parent()?;
    if cache.file_name()? != "__pycache__" {
        return None;
    }
    let stem = stem_of(path.file_name()?.to_str()?)?;
    Some(cache.parent()?.join(format!("{stem}.py")))
}

/// Where Python puts the (unoptimized) bytecode of `source` (PEP 3147):
/// `dir/mod.py` gives `dir/__pycache__/mod.{cache_tag}.pyc`. `None` for a
/// path that is not a `.py` file.
pub fn cache_path(source: &Path, cache_tag: &str) -> Option<PathBuf> {
    if source.extension()? != "py" {
        return None;
    }
    let stem = source.file_stem()?.to_str()?;
    Some(
        source
            .with_file_name("__pycache__")
            .join(format!("{stem}.{cache_tag}.pyc")),
    )
}

/// Whether `name` (a file name in `__pycache__`) is bytecode of the module
/// `stem` (the source's file name without `.py`).
pub fn is_bytecode_of(name: &str, stem: &str) -> bool {
    stem_of(name) == Some(stem)
}

/// The module stem of a bytecode file name, if the name has the shape
/// Python gives it.
fn stem_of(name: &str) -> Option<&str> {
    let parts: Vec<&str> = name.split('.').collect();
    let stem = match parts.as_slice() {
        [stem, tag, "pyc"] if !tag.is_empty() => stem,
        [stem, tag, optimization, "pyc"]
            if !tag.is_empty()
                && optimization.strip_prefix("opt-").is_some_and(|level| {
                    !level.is_empty() && level.chars().all(|c| c.is_ascii_alphanumeric())
                }) =>
        {
            stem
        }
        _ => return None,
    };
    (!stem.is_empty()).then_some(*stem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_named_bytecode_maps_back_to_its_source() {
        assert_eq!(
            source_of(Path::new("/s/pkg/__pycache__/mod.cpython-311.pyc")),
            Some(PathBuf::from("/s/pkg/mod.py"))
        );
        assert_eq!(
            source_of(Path::new("/s/pkg/__pycache__/mod.cpython-311.opt-2.pyc")),
            Some(PathBuf::from("/s/pkg/mod.py"))
        );
        assert_eq!(
            source_of(Path::new("/s/pkg/__pycache__/mod.pypy39.opt-1.pyc")),
            Some(PathBuf::from("/s/pkg/mod.py"))
        );
        assert_eq!(source_of(Path::new("/s/pkg/mod.pyc")), None);
        assert!(is_bytecode_of("mod.cpython-313.pyc", "mod"));
        let cached = cache_path(Path::new("/s/pkg/mod.py"), "cpython-313");
        assert_eq!(
            cached.as_deref(),
            Some(Path::new("/s/pkg/__pycache__/mod.cpython-313.pyc"))
        );
        assert_eq!(
            source_of(&cached.unwrap_or_default()),
            Some(PathBuf::from("/s/pkg/mod.py"))
        );
        assert_eq!(cache_path(Path::new("/s/pkg/mod.pyi"), "cpython-313"), None);
        assert!(!is_bytecode_of("mod.cpython-313.pyc", "other"));
    }

    #[test]
    fn only_names_python_gives_bytecode_count_as_bytecode() {
        for name in [
            "mod.pyc",
            "mod..pyc",
            "mod.cpython-311.evil.pyc",
            "mod.cpython-311.opt-.pyc",
            "mod.cpython-311.opt-1.x.pyc",
            "mod.cpython-311.py",
            "mod.cpython-311.pyc.bak",
            ".cpython-311.pyc",
        ] {
            let path = Path::new("/s/pkg/__pycache__").join(name);
            assert_eq!(source_of(&path), None, "{name}");
            assert!(!is_bytecode_of(name, "mod"), "{name}");
        }
    }
}
