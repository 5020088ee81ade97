//! Marker evaluation: keel's probe of the interpreter as uv-pep508's
//! environment, and the lock-file variables `extras` and
//! `dependency_groups` as sets of names (*pylock.toml specification §
//! Installation*, *Dependency specifiers § Environment markers*).

use std::str::FromStr;

use uv_normalize::{ExtraName, GroupName};
use uv_pep508::{MarkerEnvironment, MarkerEnvironmentBuilder, MarkerTree};

use crate::error::Rule;

/// What markers are evaluated against: the interpreter, and for a lock's
/// packages the extras and groups asked for.
pub struct MarkerContext {
    environment: MarkerEnvironment,
    extras: Vec<ExtraName>,
    groups: Vec<GroupName>,
}

impl MarkerContext {
    /// The interpreter's markers, with `extras` and `groups` (names as
    /// given; normalized here).
    pub fn new(
        markers: &keel_python::MarkerEnvironment,
        extras: &[String],
        groups: &[String],
    ) -> Result<MarkerContext, Rule> {
        let environment = MarkerEnvironment::try_from(MarkerEnvironmentBuilder {
            implementation_name: &markers.implementation_name,
            implementation_version: &markers.implementation_version,
            os_name: &markers.os_name,
            platform_machine: &markers.platform_machine,
            platform_python_implementation: &markers.platform_python_implementation,
            platform_release: &markers.platform_release,
            platform_system: &markers.platform_system,
            platform_version: &markers.platform_version,
            python_full_version: markers.python_full_version.trim_end_matches('+'),
            python_version: &markers.python_version,
            sys_platform: &markers.sys_platform,
        })
        .map_err(|e| Rule::Invalid {
            what: "interpreter's marker environment",
            value: markers.python_full_version.clone(),
            reason: e.to_string(),
        })?;
        Ok(MarkerContext {
            environment,
            extras: extras
                .iter()
                .filter_map(|e| ExtraName::from_str(e).ok())
                .collect(),
            groups: groups
                .iter()
                .filter_map(|g| GroupName::from_str(g).ok())
                .collect(),
        })
    }

    /// A requirement's marker (`extra` as in metadata; here none): how a
    /// lock's `environments` are evaluated.
    pub fn holds(&self, marker: MarkerTree) -> bool {
        marker.evaluate(&self.environment, &[])
    }

    /// A requirement's marker with `extra` set to each of `extras`
    /// (*Core metadata § Requires-Dist*: a requirement of an extra).
    pub fn holds_with_extras(&self, marker: MarkerTree, extras: &[String]) -> bool {
        let extras: Vec<ExtraName> = extras
            .iter()
            .filter_map(|e| ExtraName::from_str(e).ok())
            .collect();
        marker.evaluate(&self.environment, &extras)
    }

    /// A lock's package marker, with `extras` and `dependency_groups` the
    /// sets asked for (§ Installation, step 1).
    pub fn holds_in_lock(&self, marker: MarkerTree) -> bool {
        marker.evaluate_pep751(&self.environment, &self.extras, &self.groups)
    }
}
