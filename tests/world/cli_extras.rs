//! The commands that serve authors rather than clusters: `schema`, `completions`, `man`,
//! and the examples every command's help ends with. None of them needs a cluster: they run
//! here with a kubeconfig that does not exist.

use assert_cmd::cargo::cargo_bin_cmd;

const COMMANDS: [&str; 10] = [
    "render",
    "apply",
    "diff",
    "wait",
    "up",
    "status",
    "repair",
    "schema",
    "completions",
    "man",
];

/// Runs the binary with no way to reach a cluster.
fn run(args: &[&str]) -> std::process::Output {
    cargo_bin_cmd!("catalyst-bootstrap")
        .args(args)
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env("HOME", "/nonexistent")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn schema_prints_json_and_nothing_else() {
    let out = run(&["schema"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stderr.is_empty());
    let schema: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(schema["title"], "Sovereign");
    let out = run(&["schema", "--spec", "clusters/example/sovereign.yaml"]);
    assert_eq!(out.status.code(), Some(2), "schema takes no spec");
}

#[test]
fn completions_cover_every_command_and_flag_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        assert!(out.stderr.is_empty(), "{shell}");
        let script = stdout(&out);
        for command in COMMANDS {
            assert!(script.contains(command), "{shell}: no `{command}`");
        }
        for flag in ["spec", "unreachable-timeout", "insecure-skip-tls-verify"] {
            assert!(script.contains(flag), "{shell}: no `{flag}`");
        }
    }
    let out = run(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("possible values: bash, zsh, fish"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn the_man_page_lists_the_commands_and_a_directory_gets_one_page_each() {
    let out = run(&["man"]);
    assert_eq!(out.status.code(), Some(0));
    let page = stdout(&out);
    assert!(page.contains(".TH catalyst-bootstrap 1"), "{page}");
    for command in COMMANDS {
        assert!(
            page.contains(&format!("catalyst\\-bootstrap\\-{command}(1)")),
            "no {command}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let pages = dir.path().join("man1");
    let out = run(&["man", "--out", pages.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    for command in COMMANDS {
        let file = pages.join(format!("catalyst-bootstrap-{command}.1"));
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            text.contains(".TH catalyst-bootstrap-"),
            "{}",
            file.display()
        );
    }
    assert!(pages.join("catalyst-bootstrap.1").is_file());
    // A file where the directory should be: exit 1, the cause named once.
    let blocked = dir.path().join("blocked");
    std::fs::write(&blocked, "").unwrap();
    let out = run(&["man", "--out", blocked.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "error: cannot write the man pages to {}: ",
            blocked.display()
        )),
        "{stderr}"
    );
}

#[test]
fn every_help_ends_with_examples_that_name_the_command() {
    for command in COMMANDS.iter().copied().chain([""]) {
        let args: Vec<&str> = [command, "--help"]
            .into_iter()
            .filter(|a| !a.is_empty())
            .collect();
        let out = run(&args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let help = stdout(&out);
        let (_, examples) = help
            .rsplit_once("\nExamples:\n")
            .unwrap_or_else(|| panic!("{command} --help has no examples:\n{help}"));
        let lines: Vec<&str> = examples.lines().filter(|l| !l.is_empty()).collect();
        assert!((1..=2).contains(&lines.len()), "{command}: {lines:?}");
        for line in lines {
            let expected = if command.is_empty() {
                "  catalyst-bootstrap ".to_owned()
            } else {
                format!("  catalyst-bootstrap {command}")
            };
            assert!(line.starts_with(&expected), "{command}: {line}");
        }
    }
}

#[test]
fn an_unwritable_stdout_is_an_internal_error() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full, a device every write to fails");
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin!("catalyst-bootstrap"))
        .arg("schema")
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: cannot write the schema to stdout: "),
        "{stderr}"
    );
}
