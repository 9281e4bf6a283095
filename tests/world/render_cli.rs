//! `catalyst-bootstrap render` end to end: stdout, `--out`, and where defaults come from.

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::cargo::cargo_bin_cmd;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str]) -> Output {
    let out = cargo_bin_cmd!("catalyst-bootstrap")
        .current_dir(root())
        .args(args)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

const EXAMPLE_FILES: [&str; 5] = [
    "10-namespace.yaml",
    "11-chart-source.yaml",
    "12-external-dns.yaml",
    "13-networkpolicy.yaml",
    "14-ciliumnetworkpolicy.yaml",
];

#[test]
fn stdout_is_the_committed_kit_as_one_stream() {
    let out = run(&["render", "--spec", "clusters/example/sovereign.yaml"]);
    let expected: String = EXAMPLE_FILES
        .iter()
        .map(|f| {
            let text =
                std::fs::read_to_string(root().join("clusters/example/bootstrap-kit").join(f))
                    .unwrap();
            format!("---\n{text}")
        })
        .collect();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
    assert!(out.stderr.is_empty());
}

#[test]
fn out_writes_identical_files_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a/kit"), dir.path().join("b"));
    for target in [&a, &b] {
        let out = run(&[
            "render",
            "--spec",
            "clusters/example/sovereign.yaml",
            "--out",
            path(target),
        ]);
        assert!(out.stdout.is_empty());
        assert!(String::from_utf8_lossy(&out.stderr).contains("wrote 5 manifests"));
    }
    assert_eq!(files(&a), EXAMPLE_FILES);
    for f in EXAMPLE_FILES {
        let first = std::fs::read(a.join(f)).unwrap();
        assert_eq!(first, std::fs::read(b.join(f)).unwrap(), "{f}");
        assert_eq!(
            first,
            std::fs::read(root().join("clusters/example/bootstrap-kit").join(f)).unwrap(),
            "{f}"
        );
    }
}

#[test]
fn out_removes_stale_kit_files_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let kit = dir.path().join("kit");
    std::fs::create_dir_all(kit.join("15-subdir.yaml")).unwrap();
    for stale in ["14-ciliumnetworkpolicy.yaml", "20-old.yaml"] {
        std::fs::write(kit.join(stale), "stale\n").unwrap();
    }
    for keep in [
        "README.md",
        "kustomization.yaml",
        "1-short.yaml",
        "notes.yml",
    ] {
        std::fs::write(kit.join(keep), "keep\n").unwrap();
    }
    // Without Cilium the kit has no CiliumNetworkPolicy, so the old one is stale.
    let spec = dir.path().join("sovereign.yaml");
    let example = std::fs::read_to_string(root().join("clusters/example/sovereign.yaml")).unwrap();
    std::fs::write(&spec, example.replace("cni: cilium", "cni: calico")).unwrap();
    let out = run(&["render", "--spec", path(&spec), "--out", path(&kit)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("removed stale"), "{stderr}");
    assert_eq!(
        files(&kit),
        [
            "1-short.yaml",
            "10-namespace.yaml",
            "11-chart-source.yaml",
            "12-external-dns.yaml",
            "13-networkpolicy.yaml",
            "15-subdir.yaml",
            "README.md",
            "kustomization.yaml",
            "notes.yml",
        ]
    );
}

/// Lays out clusters/<name>/sovereign.yaml, optionally with clusters/_template beside it.
fn cluster(dir: &Path, template: Option<&str>) -> PathBuf {
    let spec = dir.join("clusters/a/sovereign.yaml");
    std::fs::create_dir_all(spec.parent().unwrap()).unwrap();
    std::fs::copy(root().join("clusters/example/sovereign.yaml"), &spec).unwrap();
    if let Some(text) = template {
        let path = dir.join("clusters/_template/sovereign.yaml");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    spec
}

fn owner_of(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("txtOwnerId: "))
        .unwrap()
        .to_owned()
}

#[test]
fn defaults_come_from_the_flag_then_the_sibling_template_then_the_binary() {
    let template =
        std::fs::read_to_string(root().join("clusters/_template/sovereign.yaml")).unwrap();
    let owned_by =
        |owner: &str| template.replace("txtOwnerId: openova", &format!("txtOwnerId: {owner}"));

    let alone = tempfile::tempdir().unwrap();
    let spec = cluster(alone.path(), None);
    assert_eq!(
        owner_of(&run(&["render", "--spec", path(&spec)])),
        "openova"
    );

    let beside = tempfile::tempdir().unwrap();
    let spec = cluster(beside.path(), Some(&owned_by("sibling")));
    assert_eq!(
        owner_of(&run(&["render", "--spec", path(&spec)])),
        "sibling"
    );

    let flag = beside.path().join("flag-defaults.yaml");
    std::fs::write(&flag, owned_by("flagged")).unwrap();
    let out = run(&["render", "--spec", path(&spec), "--defaults", path(&flag)]);
    assert_eq!(owner_of(&out), "flagged");
}

#[test]
fn a_spec_in_the_current_directory_finds_the_template() {
    let dir = tempfile::tempdir().unwrap();
    let template = std::fs::read_to_string(root().join("clusters/_template/sovereign.yaml"))
        .unwrap()
        .replace("txtOwnerId: openova", "txtOwnerId: relative");
    let spec = cluster(dir.path(), Some(&template));
    let out = cargo_bin_cmd!("catalyst-bootstrap")
        .current_dir(spec.parent().unwrap())
        .args(["render", "--spec", "sovereign.yaml"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(owner_of(&out), "relative");
}
