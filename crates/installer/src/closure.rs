//! keel has no resolver, so a requirements file must be closed: every
//! `Requires-Dist` of every wheel in the set whose marker holds (with
//! `extra` set to the extras it is asked for) must be satisfied by a wheel
//! of the set or, for `install`, a distribution already in the environment
//! (*Core metadata specifications § Requires-Dist*; *Dependency
//! specifiers*). `--no-deps` turns the check off.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use keel_lock::MarkerContext;
use keel_venv::{Environment, InstalledIndex};
use keel_wheel::{PackageName, WheelArchive};
use uv_pep508::uv_pep440;

use crate::Error;
use crate::compat::Target;
use crate::origin::WheelRequest;

/// What the set holds: each name's version and requirements.
struct Member {
    display: String,
    requires: Vec<String>,
}

/// Checks the closure of `requests`; every unmet requirement is reported.
pub(crate) fn check(
    requests: &[WheelRequest],
    env: &Environment,
    target: &Target,
    exact: bool,
) -> Result<(), Error> {
    let mut versions: HashMap<PackageName, uv_pep440::Version> = HashMap::new();
    if !exact {
        for dist in InstalledIndex::read(env)?.iter() {
            if let Ok(v) = uv_pep440::Version::from_str(&dist.version.to_string()) {
                versions.insert(dist.name.clone(), v);
            }
        }
    }
    let mut members: HashMap<PackageName, Member> = HashMap::new();
    for request in requests {
        let wheel = WheelArchive::open(&request.path).map_err(Error::InvalidWheel)?;
        let metadata = wheel.metadata();
        let name = PackageName::new(&metadata.name);
        if let Ok(v) = uv_pep440::Version::from_str(&metadata.version) {
            versions.insert(name.clone(), v);
        }
        members.insert(
            name,
            Member {
                display: format!("{} {}", metadata.name, metadata.version),
                requires: metadata.requires_dist.clone(),
            },
        );
    }
    let context = MarkerContext::new(target.interpreter.markers(), &[], &[])
        .map_err(|rule| Error::Markers(rule.to_string()))?;
    let unmet = unmet(&members, &versions, &context);
    if unmet.is_empty() {
        Ok(())
    } else {
        Err(Error::Unsatisfied {
            requirements: unmet,
        })
    }
}

/// Walks the set from each member (no extras), following requirements'
/// extras into the members they name.
fn unmet(
    members: &HashMap<PackageName, Member>,
    versions: &HashMap<PackageName, uv_pep440::Version>,
    context: &MarkerContext,
) -> Vec<String> {
    let mut queue: Vec<(PackageName, Vec<String>)> =
        members.keys().map(|n| (n.clone(), Vec::new())).collect();
    let mut seen: HashSet<(PackageName, Vec<String>)> = queue.iter().cloned().collect();
    let mut problems = Vec::new();
    while let Some((name, extras)) = queue.pop() {
        let Some(member) = members.get(&name) else {
            continue;
        };
        for text in &member.requires {
            let Ok(requirement) = uv_pep508::Requirement::<uv_pep508::VerbatimUrl>::from_str(text)
            else {
                problems.push(format!(
                    "{}: `Requires-Dist: {text}` does not parse",
                    member.display
                ));
                continue;
            };
            if !context.holds_with_extras(requirement.marker, &extras) {
                continue;
            }
            let dep = PackageName::new(requirement.name.as_ref());
            let satisfied = match (versions.get(&dep), &requirement.version_or_url) {
                (None, _) => Err("it is neither in the set nor installed".to_string()),
                (Some(v), Some(uv_pep508::VersionOrUrl::VersionSpecifier(spec)))
                    if !spec.contains(v) =>
                {
                    Err(format!("{dep} {v} is"))
                }
                _ => Ok(()),
            };
            if let Err(found) = satisfied {
                problems.push(format!("{} requires `{text}`, but {found}", member.display));
                continue;
            }
            let dep_extras: Vec<String> =
                requirement.extras.iter().map(|e| e.to_string()).collect();
            if !dep_extras.is_empty() && seen.insert((dep.clone(), dep_extras.clone())) {
                queue.push((dep, dep_extras));
            }
        }
    }
    problems.sort();
    problems
}
