//! The plan: what a transaction will change, decided before any side
//! effect, from the request and the index of installed distributions
//! alone (uv's `Plan`). A pure function, unit-tested below.

use std::collections::{HashMap, HashSet};

use keel_cache::WheelSource;
use keel_venv::{InstalledDistribution, InstalledIndex};
use keel_wheel::{PackageName, Version};

use crate::Error;
use crate::report::NameVersion;

/// What the caller asked for.
pub(crate) struct Request {
    /// The wheels, each once.
    pub wheels: Vec<WheelSource>,
    /// Install even a version that is already installed.
    pub reinstall: bool,
    /// Remove every distribution that is not among the wheels (`sync`).
    pub exact: bool,
}

/// One wheel to install and the installed distributions it replaces (more
/// than one when the environment holds duplicates of its name: all go).
#[derive(Debug)]
pub(crate) struct Change {
    pub source: WheelSource,
    pub version: Version,
    pub replaces: Vec<InstalledDistribution>,
}

/// What a transaction will do.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Wheels to install, in the order given.
    pub install: Vec<Change>,
    /// Requested wheels whose version is installed already.
    pub unchanged: Vec<NameVersion>,
    /// Distributions to remove (`exact`), by name.
    pub remove: Vec<InstalledDistribution>,
}

impl Plan {
    /// Whether the transaction changes nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.install.is_empty() && self.remove.is_empty()
    }

    /// Every installed distribution that leaves: the replaced, then the
    /// removed.
    pub(crate) fn leaving(&self) -> Vec<InstalledDistribution> {
        self.install
            .iter()
            .flat_map(|change| change.replaces.iter().cloned())
            .chain(self.remove.iter().cloned())
            .collect()
    }
}

/// Decides what an install changes. "Already installed" is PEP 440
/// equality of versions (`1.0` is `1.0.0`, *Version specifiers § Version
/// matching*), and holds only when the name is installed exactly once.
pub(crate) fn plan(request: Request, installed: &InstalledIndex) -> Result<Plan, Error> {
    let mut by_name: HashMap<PackageName, &std::path::Path> = HashMap::new();
    for source in &request.wheels {
        let name = source.filename.normalized_name();
        if let Some(first) = by_name.insert(name.clone(), &source.path) {
            return Err(Error::SameDistributionTwice {
                name,
                first: first.to_path_buf(),
                second: source.path.clone(),
            });
        }
    }
    let requested: HashSet<PackageName> = by_name.into_keys().collect();
    warn_of_duplicates(installed);
    let mut plan = Plan::default();
    for source in request.wheels {
        let version = source
            .filename
            .pep440_version()
            .map_err(Error::InvalidWheel)?;
        let current = installed.get(&source.filename.normalized_name());
        if let [only] = current
            && only.version == version
            && !request.reinstall
        {
            plan.unchanged.push(NameVersion {
                name: only.name.clone(),
                version,
            });
            continue;
        }
        plan.install.push(Change {
            source,
            version,
            replaces: current.to_vec(),
        });
    }
    if request.exact {
        plan.remove = installed
            .iter()
            .filter(|dist| !requested.contains(&dist.name))
            .cloned()
            .collect();
    }
    Ok(plan)
}

/// Decides what an uninstall removes: every installed distribution of each
/// name; the names not installed, as given, each once.
pub(crate) fn plan_removal(
    names: &[impl AsRef<str>],
    installed: &InstalledIndex,
) -> (Vec<InstalledDistribution>, Vec<String>) {
    warn_of_duplicates(installed);
    let mut leaving = Vec::new();
    let mut seen = HashSet::new();
    let mut not_installed = Vec::new();
    for name in names {
        let normalized = PackageName::new(name.as_ref());
        match installed.get(&normalized) {
            [] => not_installed.push(name.as_ref().to_string()),
            dists if seen.insert(normalized) => leaving.extend(dists.iter().cloned()),
            _ => {}
        }
    }
    (leaving, not_installed)
}

fn warn_of_duplicates(installed: &InstalledIndex) {
    for (name, dists) in installed.duplicates() {
        let versions: Vec<String> = dists.iter().map(|d| d.version.to_string()).collect();
        tracing::warn!(
            "{name} is installed {} times ({}); replacing or removing it removes every one",
            dists.len(),
            versions.join(", ")
        );
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// A wheel file of that name (empty: planning reads only names).
    fn wheel(file_name: &str) -> WheelSource {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(file_name);
        fs_err::write(&path, b"").expect("write the wheel file");
        WheelSource::new(&path).expect("stat the wheel")
    }

    fn installed(dists: &[(&str, &str)]) -> InstalledIndex {
        let mut index = InstalledIndex::default();
        for (name, version) in dists {
            index.insert(InstalledDistribution {
                name: PackageName::new(name),
                version: version.parse().expect("version"),
                dist_info: PathBuf::from(format!("/venv/site/{name}-{version}.dist-info")),
            });
        }
        index
    }

    fn request(wheels: &[&str], reinstall: bool, exact: bool) -> Request {
        Request {
            wheels: wheels.iter().map(|w| wheel(w)).collect(),
            reinstall,
            exact,
        }
    }

    fn installing(plan: &Plan) -> Vec<(String, Vec<String>)> {
        plan.install
            .iter()
            .map(|c| {
                let replaced = c.replaces.iter().map(|d| d.version.to_string()).collect();
                (c.source.filename.to_string(), replaced)
            })
            .collect()
    }

    #[test]
    fn a_new_distribution_is_installed_and_replaces_nothing() {
        let plan = plan(
            request(&["a-1.0-py3-none-any.whl"], false, false),
            &installed(&[]),
        )
        .expect("plan");
        assert_eq!(
            installing(&plan),
            vec![("a-1.0-py3-none-any.whl".to_string(), vec![])]
        );
        assert!(plan.unchanged.is_empty() && plan.remove.is_empty());
    }

    #[test]
    fn an_installed_version_is_unchanged_by_pep440_equality() {
        let index = installed(&[("a", "1.0.0")]);
        let plan = plan(request(&["A-1.0-py3-none-any.whl"], false, false), &index).expect("plan");
        assert!(plan.is_empty(), "{plan:?}");
        assert_eq!(plan.unchanged.len(), 1);
        assert_eq!(plan.unchanged[0].name, "a");
        assert_eq!(
            plan.unchanged[0].version,
            "1.0".parse::<Version>().expect("v")
        );
    }

    #[test]
    fn reinstall_replaces_the_same_version_and_another_version_is_an_upgrade() {
        let index = installed(&[("a", "1.0"), ("b", "1.0")]);
        let plan = plan(
            request(
                &["a-1.0-py3-none-any.whl", "b-2.0-py3-none-any.whl"],
                true,
                false,
            ),
            &index,
        )
        .expect("plan");
        assert_eq!(
            installing(&plan),
            vec![
                (
                    "a-1.0-py3-none-any.whl".to_string(),
                    vec!["1.0".to_string()]
                ),
                (
                    "b-2.0-py3-none-any.whl".to_string(),
                    vec!["1.0".to_string()]
                ),
            ]
        );
    }

    #[test]
    fn duplicates_of_a_name_are_all_replaced_never_taken_as_installed() {
        let index = installed(&[("a", "1.0"), ("a", "2.0")]);
        let plan = plan(request(&["a-1.0-py3-none-any.whl"], false, false), &index).expect("plan");
        assert_eq!(
            installing(&plan),
            vec![(
                "a-1.0-py3-none-any.whl".to_string(),
                vec!["1.0".to_string(), "2.0".to_string()]
            )]
        );
    }

    #[test]
    fn exact_removes_every_distribution_not_requested() {
        let index = installed(&[("a", "1.0"), ("b", "1.0"), ("c-d", "3")]);
        let plan = plan(request(&["a-1.0-py3-none-any.whl"], false, true), &index).expect("plan");
        assert!(plan.install.is_empty());
        let removed: Vec<String> = plan.remove.iter().map(|d| d.name.to_string()).collect();
        assert_eq!(removed, ["b", "c-d"]);
        assert_eq!(plan.leaving().len(), 2);
    }

    #[test]
    fn two_wheels_of_one_distribution_are_refused() {
        let error = plan(
            request(
                &["a-1.0-py3-none-any.whl", "A-2.0-py3-none-any.whl"],
                false,
                false,
            ),
            &installed(&[]),
        )
        .expect_err("two versions of a");
        assert!(
            matches!(error, Error::SameDistributionTwice { .. }),
            "{error}"
        );
    }

    #[test]
    fn a_wheel_version_that_is_not_pep440_is_refused() {
        let error = plan(
            request(&["a-1.0_not.a.version_x-py3-none-any.whl"], false, false),
            &installed(&[]),
        );
        assert!(error.is_err());
    }

    #[test]
    fn removal_takes_every_spelling_once_and_reports_the_rest_as_given() {
        let index = installed(&[("zope-interface", "5"), ("a", "1"), ("a", "2")]);
        let (leaving, missing) =
            plan_removal(&["Zope.Interface", "zope_interface", "nope", "A"], &index);
        let names: Vec<String> = leaving
            .iter()
            .map(|d| format!("{}=={}", d.name, d.version))
            .collect();
        assert_eq!(names, ["zope-interface==5", "a==1", "a==2"]);
        assert_eq!(missing, ["nope"]);
    }
}
