//! `entry_points.txt`: the console and GUI scripts a wheel asks for.
//!
//! *Entry points specification § File format*: an INI file; in the
//! `console_scripts` and `gui_scripts` groups each key is a script name and
//! each value `module:object.attr [extras]`.

use crate::Rule;

/// One script entry point: `name = module:qualname [extras]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryPoint {
    /// The script's name: the key, and the file name in `bin/`.
    pub name: String,
    /// The dotted module path before `:` (`flask.cli`).
    pub module: String,
    /// The dotted attribute path after `:` (`main`, `obj.attr`). A script
    /// must name one: a value without `:` is refused by
    /// [`EntryPoints::parse`].
    pub object: String,
    /// Whether it is a `gui_scripts` entry (else `console_scripts`).
    pub gui: bool,
}

/// The script entry points of a wheel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryPoints {
    /// The `console_scripts` and `gui_scripts` entries, in file order.
    pub scripts: Vec<EntryPoint>,
}

impl EntryPoints {
    /// Parses the `console_scripts` and `gui_scripts` groups; other groups
    /// (plugins) are ignored. Comments start with `#` or `;`.
    pub fn parse(text: &str) -> Result<Self, Rule> {
        let mut scripts = Vec::new();
        let mut group: Option<bool> = None; // Some(gui?) inside a script group
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with(['#', ';']) {
                continue;
            }
            if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                group = match section.trim() {
                    "console_scripts" => Some(false),
                    "gui_scripts" => Some(true),
                    _ => None,
                };
                continue;
            }
            let Some(gui) = group else { continue };
            let bad =
                |why: &str| Rule::MalformedWheelFile(format!("entry_points.txt: `{line}`: {why}"));
            let (name, value) = line
                .split_once('=')
                .ok_or_else(|| bad("expected `name = module:object`"))?;
            let name = name.trim();
            // Extras (`[extra]`) only select dependencies; they do not change the script.
            let value = value.split('[').next().unwrap_or_default().trim();
            let (module, object) = value
                .split_once(':')
                .ok_or_else(|| bad("a script needs `module:object`"))?;
            let (module, object) = (module.trim(), object.trim());
            let is_dotted_identifier = |s: &str| {
                !s.is_empty()
                    && s.split('.').all(|part| {
                        part.chars()
                            .next()
                            .is_some_and(|c| c.is_alphabetic() || c == '_')
                            && part.chars().all(|c| c.is_alphanumeric() || c == '_')
                    })
            };
            if name.is_empty() {
                return Err(bad("the script name is empty"));
            }
            if !is_dotted_identifier(module) || !is_dotted_identifier(object) {
                return Err(bad("module and object must be dotted Python identifiers"));
            }
            scripts.push(EntryPoint {
                name: name.to_string(),
                module: module.to_string(),
                object: object.to_string(),
                gui,
            });
        }
        Ok(EntryPoints { scripts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_console_and_gui_scripts_and_ignores_other_groups() {
        let eps = EntryPoints::parse(
            "[console_scripts]\nflask = flask.cli:main\n# comment\nx=pkg.mod:obj.attr [extra1,extra2]\n\n\
             [gui_scripts]\nviewer = pkg.gui:run\n\n[pytest11]\nplugin = pkg.plugin\n",
        )
        .unwrap();
        assert_eq!(eps.scripts.len(), 3);
        assert_eq!(
            eps.scripts[1],
            EntryPoint {
                name: "x".into(),
                module: "pkg.mod".into(),
                object: "obj.attr".into(),
                gui: false
            }
        );
        assert!(eps.scripts[2].gui);
    }

    #[test]
    fn refuses_scripts_without_object_or_with_code() {
        assert!(EntryPoints::parse("[console_scripts]\nx = pkg.mod\n").is_err());
        assert!(EntryPoints::parse("[console_scripts]\nx = os:system('rm -rf /')\n").is_err());
        assert!(EntryPoints::parse("[console_scripts]\njust a line\n").is_err());
    }
}
