//! uv's conventions on every command: `--cache-dir`, `-q` and `-v`
//! anywhere; an environment variable for every per-machine default, each
//! changing what its flag changes and named in `--help`; `NO_COLOR`; shell
//! completions; a man page.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use keel_fixtures::bundled;

/// Every subcommand, with the arguments that make it do its job once the
/// sandbox holds a venv (`venv`, with HELLO installed) and a cache.
fn every_subcommand(sandbox: &Sandbox, venv: &Path) -> Vec<(&'static str, Vec<String>)> {
    let venv = venv.display().to_string();
    let hello = sandbox.wheel(bundled::HELLO_V2).display().to_string();
    let data = sandbox.wheel(bundled::DATA).display().to_string();
    let strings = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    vec![
        (
            "install",
            strings(&["install", "--venv", &venv, &hello, &data]),
        ),
        ("sync", strings(&["sync", "--venv", &venv, &hello, &data])),
        ("verify", strings(&["verify", "--venv", &venv])),
        (
            "uninstall",
            strings(&["uninstall", "--venv", &venv, "keel-demo-data"]),
        ),
        ("recover", strings(&["recover", "--venv", &venv])),
        ("cache add", strings(&["cache", "add", &hello])),
        ("cache dir", strings(&["cache", "dir"])),
        ("cache size", strings(&["cache", "size"])),
        ("cache verify", strings(&["cache", "verify"])),
        ("cache prune", strings(&["cache", "prune"])),
        ("cache clean", strings(&["cache", "clean"])),
        (
            "generate-shell-completion",
            strings(&["generate-shell-completion", "bash"]),
        ),
    ]
}

#[test]
fn every_command_takes_cache_dir_quiet_and_verbose_wherever_they_are_placed() {
    let sandbox = Sandbox::new();
    let venv = sandbox.venv("venv");
    let cache = path_of(&sandbox.cache);
    for (name, args) in every_subcommand(&sandbox, &venv) {
        // Before the subcommand (global) and after it.
        for flags_first in [true, false] {
            for flag in [&["-q"][..], &["-v"], &["--cache-dir", &cache]] {
                let mut command = keel();
                command.env("KEEL_CACHE_DIR", &sandbox.cache);
                match flags_first {
                    true => command.args(flag).args(&args),
                    false => command.args(&args).args(flag),
                };
                let output = run(&mut command);
                assert_success_of(&output, &format!("keel {name} with {flag:?}"));
                if flag == ["-q"] && name != "generate-shell-completion" {
                    assert_eq!(stderr(&output), "", "keel {name} -q printed");
                }
            }
        }
    }
}

#[test]
fn cache_dir_and_its_variable_name_the_same_cache_and_the_flag_wins() {
    let sandbox = Sandbox::new();
    let by_flag = sandbox.path().join("by-flag");
    let by_variable = sandbox.path().join("by-variable");

    let dir = |command: &mut Command| stdout(&run(command)).trim().to_owned();
    let mut variable = keel();
    variable
        .args(["cache", "dir"])
        .env("KEEL_CACHE_DIR", &by_variable);
    assert_eq!(dir(&mut variable), path_of(&by_variable));
    let mut both = keel();
    both.args(["cache", "dir", "--cache-dir"])
        .arg(&by_flag)
        .env("KEEL_CACHE_DIR", &by_variable);
    assert_eq!(dir(&mut both), path_of(&by_flag));

    // An install unpacks where the variable says.
    let venv = sandbox.venv("venv");
    let mut install = keel();
    install
        .args(["install", "--venv"])
        .arg(&venv)
        .arg(sandbox.wheel(bundled::HELLO_V2))
        .env("KEEL_CACHE_DIR", &by_variable);
    assert_success(&run(&mut install));
    assert!(by_variable.join("archives-v1/keel-demo-hello").is_dir());
    assert!(!by_flag.exists());
}

#[test]
fn virtual_env_is_the_environment_when_no_venv_is_given() {
    let sandbox = Sandbox::new();
    let active = sandbox.venv("active");
    let other = sandbox.venv("other");
    let hello = sandbox.wheel(bundled::HELLO_V2);

    let mut install = keel();
    install
        .arg("install")
        .arg("--cache-dir")
        .arg(&sandbox.cache)
        .arg(&hello)
        .env("VIRTUAL_ENV", &active);
    assert_success(&run(&mut install));
    assert_eq!(dist_infos(&active), ["keel_demo_hello-2.0.0.dist-info"]);

    // --venv wins over the variable.
    let mut install = keel_install(&other, &sandbox.cache);
    install.arg(&hello).env("VIRTUAL_ENV", &active);
    assert_success(&run(&mut install));
    assert_eq!(dist_infos(&other), ["keel_demo_hello-2.0.0.dist-info"]);

    for verb in [
        &["verify"][..],
        &["uninstall", "keel-demo-hello"],
        &["recover"],
    ] {
        let mut command = keel();
        command.args(verb).env("VIRTUAL_ENV", &active);
        assert_success_of(
            &run(&mut command),
            &format!("keel {verb:?} with VIRTUAL_ENV"),
        );
    }
    assert_eq!(dist_infos(&active), Vec::<String>::new());
}

/// The inode of the installed `keel_demo_hello/__init__.py` and of its
/// archive copy: equal when hardlinked.
fn linked(sandbox: &Sandbox, venv: &Path) -> bool {
    let installed = site_packages(venv).join("keel_demo_hello/__init__.py");
    let cached = sandbox
        .only_archive_tree("keel-demo-hello")
        .join("keel_demo_hello/__init__.py");
    let inode = |path: &Path| fs_err::metadata(path).expect("stat").ino();
    inode(&installed) == inode(&cached)
}

#[test]
fn keel_link_mode_changes_what_link_mode_changes() {
    let sandbox = Sandbox::new();
    let hello = sandbox.wheel(bundled::HELLO_V2);
    let cases: [(&str, &[&str], Option<&str>, bool); 4] = [
        ("default", &[], None, true),
        ("flag", &["--link-mode", "copy"], None, false),
        ("variable", &[], Some("copy"), false),
        (
            "flag over variable",
            &["--link-mode", "hardlink"],
            Some("copy"),
            true,
        ),
    ];
    for (case, flags, variable, expect_linked) in cases {
        let venv = sandbox.venv(&format!("venv-{}", case.replace(' ', "-")));
        let mut install = keel_install(&venv, &sandbox.cache);
        install.args(flags).arg(&hello);
        if let Some(mode) = variable {
            install.env("KEEL_LINK_MODE", mode);
        }
        assert_success(&run(&mut install));
        assert_eq!(linked(&sandbox, &venv), expect_linked, "{case}");
    }
}

#[test]
fn keel_offline_changes_what_offline_changes() {
    let sandbox = Sandbox::new();
    let wheel = sandbox.wheel(bundled::HELLO_V2);
    let bytes = fs_err::read(&wheel).expect("read");
    let sha256 = keel_wheel::RecordHash::of(keel_wheel::HashAlgorithm::Sha256, &bytes).hex();
    // A URL that answers nothing: online, keel tries it and fails there;
    // offline, keel names what is missing without trying.
    let lock = sandbox.path().join("pylock.toml");
    fs_err::write(
        &lock,
        format!(
            "lock-version = \"1.0\"\ncreated-by = \"keel tests\"\n\n[[packages]]\nname = \"keel-demo-hello\"\nversion = \"2.0.0\"\n\n[[packages.wheels]]\nname = \"{}\"\nurl = \"http://127.0.0.1:9/hello.whl\"\nhashes = {{ sha256 = \"{sha256}\" }}\n",
            bundled::HELLO_V2
        ),
    )
    .expect("write lock");
    let venv = sandbox.venv("venv");
    let attempt = |flag: Option<&str>, variable: Option<&str>| -> Output {
        let mut install = keel_install(&venv, &sandbox.cache);
        install.arg("-r").arg(&lock).args(flag);
        if let Some(value) = variable {
            install.env("KEEL_OFFLINE", value);
        }
        run(&mut install)
    };
    let offline_message = "nothing is fetched offline";
    assert!(!stderr(&attempt(None, None)).contains(offline_message));
    for (flag, variable) in [
        (Some("--offline"), None),
        (None, Some("1")),
        (None, Some("true")),
    ] {
        let output = attempt(flag, variable);
        assert_exit(&output, 1);
        assert_contains(&stderr(&output), offline_message);
    }
    assert!(!stderr(&attempt(None, Some("0"))).contains(offline_message));
}

#[test]
fn keel_compile_bytecode_and_no_cache_change_what_their_flags_change() {
    let sandbox = Sandbox::new();
    let hello = sandbox.wheel(bundled::HELLO_V2);
    let pyc_count = |venv: &Path| {
        walkdir::WalkDir::new(site_packages(venv).join("keel_demo_hello"))
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "pyc"))
            .count()
    };
    for (case, flag, variable) in [
        ("flag", Some("--compile-bytecode"), None),
        ("variable", None, Some(("KEEL_COMPILE_BYTECODE", "1"))),
    ] {
        let venv = sandbox.venv(&format!("bytecode-{case}"));
        let mut install = keel_install(&venv, &sandbox.cache);
        install.args(flag).arg(&hello);
        if let Some((key, value)) = variable {
            install.env(key, value);
        }
        assert_success(&run(&mut install));
        assert!(pyc_count(&venv) > 0, "{case}: no bytecode compiled");
    }
    let cold = sandbox.path().join("never-made");
    for (case, flag, variable) in [
        ("flag", Some("--no-cache"), None),
        ("variable", None, Some(("KEEL_NO_CACHE", "true"))),
    ] {
        let venv = sandbox.venv(&format!("no-cache-{case}"));
        let mut install = keel_install(&venv, &cold);
        install.args(flag).arg(&hello);
        if let Some((key, value)) = variable {
            install.env(key, value);
        }
        assert_success(&run(&mut install));
        assert!(!cold.exists(), "{case}: a cache was made");
        assert_environment_matches_record(&venv);
    }
}

#[test]
fn help_names_the_variable_of_every_per_machine_default() {
    let help = |args: &[&str]| {
        let output = run(keel().args(args).arg("--help"));
        assert_success(&output);
        stdout(&output)
    };
    let install = help(&["install"]);
    for variable in [
        "KEEL_CACHE_DIR",
        "VIRTUAL_ENV",
        "KEEL_LINK_MODE",
        "KEEL_COMPILE_BYTECODE",
        "KEEL_COMPILE_BYTECODE_TIMEOUT",
        "KEEL_NO_CACHE",
        "KEEL_SHARED_CACHE",
        "KEEL_OFFLINE",
    ] {
        assert_contains(&install, &format!("[env: {variable}="));
    }
    for command in [&["uninstall"][..], &["verify"], &["recover"]] {
        assert_contains(&help(command), "[env: VIRTUAL_ENV=");
        assert_contains(&help(command), "[env: KEEL_CACHE_DIR=");
    }
    // Each command says what it guarantees, with an example.
    let top = help(&[]);
    assert_contains(&top, "all or nothing");
    for command in [
        &["install"][..],
        &["sync"],
        &["uninstall"],
        &["recover"],
        &["verify"],
        &["cache"],
        &["cache", "add"],
        &["cache", "dir"],
        &["cache", "size"],
        &["cache", "clean"],
        &["cache", "prune"],
        &["cache", "verify"],
        &["generate-shell-completion"],
    ] {
        assert_contains(&help(command), "Example:");
    }
}

#[test]
fn no_color_turns_color_off_on_a_terminal_and_color_always_turns_it_on() {
    // `script` gives keel a terminal for stderr.
    let on_a_terminal = |no_color: Option<&str>, color: &str| -> String {
        let keel = env!("CARGO_BIN_EXE_keel");
        let mut command = Command::new("script");
        command
            .args(["-qec"])
            .arg(format!("{keel} --color {color} verify --venv /nonexistent"))
            .arg("/dev/null")
            .env_remove("NO_COLOR");
        if let Some(value) = no_color {
            command.env("NO_COLOR", value);
        }
        stdout(&run(&mut command))
    };
    let escape = '\u{1b}';
    assert!(on_a_terminal(None, "auto").contains(escape));
    assert!(!on_a_terminal(Some("1"), "auto").contains(escape));
    assert!(on_a_terminal(Some("1"), "always").contains(escape));
    assert!(!on_a_terminal(None, "never").contains(escape));
    // Not a terminal: no color unless asked for.
    let piped = run(keel().args(["verify", "--venv", "/nonexistent"]));
    assert!(!stderr(&piped).contains(escape));
    let forced = run(keel().args(["--color", "always", "verify", "--venv", "/nonexistent"]));
    assert!(stderr(&forced).contains(escape));
}

#[test]
fn shell_completions_and_the_man_page_are_generated() {
    let completion = run(keel().args(["generate-shell-completion", "bash"]));
    assert_success(&completion);
    let script = stdout(&completion);
    assert_contains(&script, "--shared-cache");
    let check = run(Command::new("bash").arg("-n").arg("-c").arg(&script));
    assert_success_of(&check, "bash -n on the completion script");
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let output = run(keel().args(["generate-shell-completion", shell]));
        assert_success(&output);
        assert_contains(&stdout(&output), "keel");
    }

    let man = run(keel().arg("generate-man-page"));
    assert_success(&man);
    let page = stdout(&man);
    assert!(page.contains(".TH keel 1"), "{page}");
    let dir = tempfile::tempdir().expect("tempdir");
    let path: PathBuf = dir.path().join("keel.1");
    fs_err::write(&path, &page).expect("write the man page");
    let rendered = run(Command::new("man")
        .arg("-l")
        .arg(&path)
        .env("MANPAGER", "cat"));
    assert_success(&rendered);
    assert_contains(&stdout(&rendered), "all or nothing");
}

fn path_of(path: &Path) -> String {
    path.display().to_string()
}
