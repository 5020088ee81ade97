//! Choosing what to install from a [`Lock`] for one interpreter, offline
//! (*pylock.toml specification § Installation*): the extras and groups
//! asked for, the lock's `requires-python` and `environments`, each
//! package's marker and `requires-python`, one entry per name, and among a
//! package's wheels the one whose best tag ranks first for the interpreter
//! (never what a server happens to offer). Every problem is collected.

use keel_python::{Interpreter, Tags};
use keel_wheel::WheelFilename;

use crate::error::{Error, Problem, Problems, Rule};
use crate::markers::MarkerContext;
use crate::pylock::{Lock, LockedFile, LockedPackage, PackageSource};

/// The extras and dependency groups to install.
#[derive(Debug, Clone, Default)]
pub struct Choice {
    /// `--extra`: none by default (§ Installation: `extras` SHOULD be the
    /// empty set by default).
    pub extras: Vec<String>,
    /// `--group`; `None` means the lock's `default-groups`.
    pub groups: Option<Vec<String>>,
}

/// A wheel chosen from the lock.
#[derive(Debug, Clone)]
pub struct Selected {
    /// The package entry it comes from.
    pub package: LockedPackage,
    /// The wheel file.
    pub file: LockedFile,
    /// Its parsed name.
    pub wheel: WheelFilename,
    /// From `[packages.archive]`: a direct URL reference (it gets a
    /// `direct_url.json`; *Recording the Direct URL Origin*).
    pub direct: bool,
}

/// The wheels `lock` installs into `interpreter`'s environment, in the
/// lock's order; all problems at once otherwise.
pub fn select(
    lock: &Lock,
    interpreter: &Interpreter,
    tags: &Tags,
    choice: &Choice,
) -> Result<Vec<Selected>, Error> {
    let mut problems = Vec::new();
    let groups = choice
        .groups
        .clone()
        .unwrap_or_else(|| lock.default_groups.clone());
    check_choice(lock, choice, &groups, &mut problems);
    let context = match MarkerContext::new(
        interpreter.markers(),
        &normalized(&choice.extras),
        &normalized(&groups),
    ) {
        Ok(context) => context,
        Err(rule) => return Err(lock_error(lock, vec![Problem::new("interpreter", rule)])),
    };
    check_lock_applies(lock, interpreter, &context, &mut problems);
    let packages = selected_packages(lock, interpreter, &context, &mut problems);
    let describe = format!(
        "{} {} at {}",
        interpreter.implementation_display(),
        interpreter.python_full_version(),
        interpreter.executable().display()
    );
    let chosen: Vec<Selected> = packages
        .into_iter()
        .filter_map(|package| choose_file(package, tags, &describe, &mut problems))
        .collect();
    if problems.is_empty() {
        Ok(chosen)
    } else {
        Err(lock_error(lock, problems))
    }
}

fn normalized(names: &[String]) -> Vec<String> {
    names
        .iter()
        .map(|n| keel_wheel::PackageName::new(n).as_str().to_string())
        .collect()
}

fn lock_error(lock: &Lock, problems: Vec<Problem>) -> Error {
    let path = match &lock.location {
        crate::LockLocation::File(path) => path.clone(),
        crate::LockLocation::Url(url) => url.as_str().into(),
    };
    Error::Lock {
        path,
        problems: Problems(problems),
    }
}

/// Extras must be among the lock's `extras`, groups among its
/// `dependency-groups` and `default-groups` (names compared normalized).
fn check_choice(lock: &Lock, choice: &Choice, groups: &[String], problems: &mut Vec<Problem>) {
    let list = |names: &[String]| {
        if names.is_empty() {
            "it declares none".to_string()
        } else {
            names.join(", ")
        }
    };
    for extra in &choice.extras {
        if !lock
            .extras
            .contains(&normalized(std::slice::from_ref(extra))[0])
        {
            problems.push(Problem::new(
                "--extra",
                Rule::UnknownExtra(extra.clone(), list(&lock.extras)),
            ));
        }
    }
    let declared: Vec<String> = lock
        .dependency_groups
        .iter()
        .chain(&lock.default_groups)
        .cloned()
        .collect();
    for group in groups {
        if !declared.contains(&normalized(std::slice::from_ref(group))[0]) {
            problems.push(Problem::new(
                "--group",
                Rule::UnknownGroup(group.clone(), list(&declared)),
            ));
        }
    }
}

/// § Installation, steps 3 and 4: the lock's `requires-python` and (one
/// of) its `environments` must hold.
fn check_lock_applies(
    lock: &Lock,
    interpreter: &Interpreter,
    context: &MarkerContext,
    problems: &mut Vec<Problem>,
) {
    let version = interpreter.python_full_version();
    if let Some(required) = &lock.requires_python
        && !required.contains(version)
    {
        problems.push(Problem::new(
            "requires-python",
            Rule::LockRequiresPython {
                required: required.to_string(),
                found: version.to_string(),
            },
        ));
    }
    if let Some(environments) = &lock.environments
        && !environments.iter().any(|m| context.holds(m.tree))
    {
        let all: Vec<String> = environments
            .iter()
            .map(|m| format!("`{}`", m.text))
            .collect();
        problems.push(Problem::new(
            "environments",
            Rule::NoEnvironment(all.join(", ")),
        ));
    }
}

/// § Installation, step 5: the packages whose marker holds, each checked
/// for `requires-python` and for a second entry of the same name.
fn selected_packages(
    lock: &Lock,
    interpreter: &Interpreter,
    context: &MarkerContext,
    problems: &mut Vec<Problem>,
) -> Vec<LockedPackage> {
    let version = interpreter.python_full_version();
    let mut selected: Vec<LockedPackage> = Vec::new();
    for package in &lock.packages {
        if let Some(marker) = &package.marker
            && !context.holds_in_lock(marker.tree)
        {
            continue;
        }
        if let Some(required) = &package.requires_python
            && !required.contains(version)
        {
            problems.push(Problem::new(
                package.describe(),
                Rule::PackageRequiresPython {
                    required: required.to_string(),
                    found: version.to_string(),
                },
            ));
        }
        if let Some(first) = selected.iter().find(|p| p.name == package.name) {
            problems.push(Problem::new(
                package.describe(),
                Rule::Ambiguous(first.describe()),
            ));
            continue;
        }
        selected.push(package.clone());
    }
    selected
}

/// § Installation, "for each package to be installed": the file keel
/// installs, or the problem (keel builds nothing).
fn choose_file(
    package: LockedPackage,
    tags: &Tags,
    interpreter: &str,
    problems: &mut Vec<Problem>,
) -> Option<Selected> {
    let problem = |rule| Problem::new(package.describe(), rule);
    match &package.source {
        PackageSource::Vcs => {
            problems.push(problem(Rule::NeedsBuild("a VCS checkout".into())));
            None
        }
        PackageSource::Directory => {
            problems.push(problem(Rule::NeedsBuild("a source directory".into())));
            None
        }
        PackageSource::Archive(file) => {
            let Ok(wheel) = file.file_name.parse::<WheelFilename>() else {
                problems.push(problem(Rule::NeedsBuild(format!(
                    "the archive `{}`",
                    file.file_name
                ))));
                return None;
            };
            let file = file.clone();
            Some(Selected {
                package,
                file,
                wheel,
                direct: true,
            })
        }
        PackageSource::Distributions { wheels, sdist } => {
            let best = best_wheel(wheels, tags);
            match (best, sdist) {
                (Some((file, wheel)), _) => {
                    let file = file.clone();
                    Some(Selected {
                        package,
                        file,
                        wheel,
                        direct: false,
                    })
                }
                (None, Some(sdist)) => {
                    problems.push(problem(Rule::NeedsBuild(format!(
                        "the sdist `{}` fits",
                        sdist.file_name
                    ))));
                    None
                }
                (None, None) => {
                    let names: Vec<&str> = wheels.iter().map(|w| w.file_name.as_str()).collect();
                    problems.push(problem(Rule::NoCompatibleWheel {
                        interpreter: interpreter.to_string(),
                        wheels: if names.is_empty() {
                            "none".into()
                        } else {
                            names.join(", ")
                        },
                    }));
                    None
                }
            }
        }
    }
}

/// The wheel whose best tag ranks first (packaging's
/// `create_compatible_tags_selector`: ties keep the lock's order).
fn best_wheel<'a>(
    wheels: &'a [LockedFile],
    tags: &Tags,
) -> Option<(&'a LockedFile, WheelFilename)> {
    wheels
        .iter()
        .filter_map(|file| {
            let wheel: WheelFilename = file.file_name.parse().ok()?;
            let rank = tags.rank(&wheel.python_tags, &wheel.abi_tags, &wheel.platform_tags)?;
            Some((rank, file, wheel))
        })
        .min_by_key(|(rank, _, _)| *rank)
        .map(|(_, file, wheel)| (file, wheel))
}
