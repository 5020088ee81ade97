//! What stops an audit before it reports anything.

/// Everything that can stop an audit (damage is a finding, not an error).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The distributions installed in the environment could not be listed.
    #[error(transparent)]
    Environment(#[from] keel_venv::Error),
    /// Names given on the command line, as the user spelled them, that match
    /// no installed distribution (in the order given).
    #[error("{}", not_installed_message(names))]
    NotInstalled {
        /// Each unknown name once, as first spelled.
        names: Vec<String>,
    },
    /// Listing site-packages for unowned entries failed (the error names the
    /// path).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

fn not_installed_message(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.as_slice() {
        [one] => format!("no distribution named {one} is installed"),
        _ => format!("no distributions named {} are installed", quoted.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_are_reported_as_spelled() {
        let one = Error::NotInstalled {
            names: vec!["Keel_Nope".to_string()],
        };
        assert_eq!(
            one.to_string(),
            "no distribution named `Keel_Nope` is installed"
        );
        let two = Error::NotInstalled {
            names: vec!["a".to_string(), "B.c".to_string()],
        };
        assert_eq!(
            two.to_string(),
            "no distributions named `a`, `B.c` are installed"
        );
    }
}
