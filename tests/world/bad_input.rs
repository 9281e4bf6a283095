//! Bad input beyond the spec's fields, through the real binary: command-line mistakes, files
//! that are not specs, kubeconfig problems, CRDs that are not installed, a user RBAC does not
//! allow, and PowerDNS unreachable or refusing the key. Every case must end with its
//! documented exit code and exactly one `error:` line saying what was wrong (with
//! `--output json`, also in the closing result event), and every case that reaches a cluster
//! must leave no kit object behind: bad input is never half-applied.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{World, unique};
use k8s_openapi::api::core::v1::Namespace;
use serde_json::{Value, json};

/// One run of the binary and what it must produce.
struct Case {
    name: String,
    args: Vec<String>,
    /// Environment variables set (`Some`) or removed (`None`) for this run.
    env: Vec<(&'static str, Option<String>)>,
    code: i32,
    /// Substrings of stderr (the error line, or clap's tips around it).
    expect: Vec<String>,
    /// What must never be printed (credentials).
    forbid: Vec<String>,
}

fn case(name: &str, args: &[&str], code: i32, expect: &[&str]) -> Case {
    Case {
        name: name.to_owned(),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        env: Vec::new(),
        code,
        expect: expect.iter().map(|e| (*e).to_owned()).collect(),
        forbid: Vec::new(),
    }
}

impl Case {
    fn env(mut self, name: &'static str, value: Option<&str>) -> Self {
        self.env.push((name, value.map(str::to_owned)));
        self
    }

    fn forbid(mut self, secret: &str) -> Self {
        self.forbid.push(secret.to_owned());
        self
    }
}

async fn run_one(case: &Case) -> Option<String> {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_catalyst-bootstrap"));
    cmd.args(&case.args).kill_on_drop(true);
    for (name, value) in &case.env {
        match value {
            Some(v) => cmd.env(name, v),
            None => cmd.env_remove(name),
        };
    }
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{}: still running after 120 s", case.name))
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut problems = Vec::new();
    if out.status.code() != Some(case.code) {
        problems.push(format!(
            "exit code {:?}, expected {}",
            out.status.code(),
            case.code
        ));
    }
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    if errors.len() != 1 {
        problems.push(format!(
            "{} `error:` lines on stderr, expected exactly one",
            errors.len()
        ));
    }
    for expected in &case.expect {
        if !stderr.contains(expected.as_str()) {
            problems.push(format!("stderr lacks {expected:?}"));
        }
    }
    for secret in &case.forbid {
        if stdout.contains(secret.as_str()) || stderr.contains(secret.as_str()) {
            problems.push("a credential was printed".to_owned());
        }
    }
    let json = case.args.windows(2).any(|w| w == ["--output", "json"]);
    if json && case.code != 2 {
        problems.extend(check_result_event(&stdout, case));
    }
    (!problems.is_empty()).then(|| {
        format!(
            "case {:?} ({}):\n  {}\n  stdout: {stdout}\n  stderr: {stderr}",
            case.name,
            case.args.join(" "),
            problems.join("\n  ")
        )
    })
}

/// With `--output json` stdout is NDJSON only, ending in the result event that carries the
/// exit code and the same message.
fn check_result_event(stdout: &str, case: &Case) -> Vec<String> {
    let events: Vec<Value> = match stdout.lines().map(serde_json::from_str).collect() {
        Ok(events) => events,
        Err(e) => return vec![format!("stdout is not NDJSON: {e}")],
    };
    let Some(last) = events.last() else {
        return vec!["no events on stdout".to_owned()];
    };
    let mut problems = Vec::new();
    if last["phase"] != "result" || last["state"] != "failed" {
        problems.push(format!("the last event is not a failed result: {last}"));
    }
    if last["exit_code"] != json!(case.code) {
        problems.push(format!("result event exit_code {}", last["exit_code"]));
    }
    let message = last["message"].as_str().unwrap_or_default();
    if let Some(expected) = case.expect.first()
        && !message.contains(expected.as_str())
    {
        problems.push(format!("result message lacks {expected:?}: {message}"));
    }
    problems
}

/// Fails unless the namespace of a Sovereign's kit (where every namespaced kit object and
/// the ApplySet parent would go) does not exist.
async fn assert_untouched(client: &kube::Client, namespace: &str, what: &str) {
    let found = kube::Api::<Namespace>::all(client.clone())
        .get_opt(namespace)
        .await
        .expect("read namespace");
    assert!(
        found.is_none(),
        "{what}: namespace {namespace} exists: bad input was (half-)applied"
    );
}

fn s(path: &Path) -> String {
    path.display().to_string()
}

/// A valid Sovereign for rendering without a world: the repository's example.
const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/clusters/example/sovereign.yaml"
);

/// Command-line mistakes: exit 2 and one `error:` line naming what was wrong. The wording
/// around the name is clap's; where the message is ours (durations), it is asserted.
fn command_line_mistakes() -> Vec<Case> {
    let spec = EXAMPLE;
    vec![
        case(
            "unknown command",
            &["deploy", "--spec", spec],
            2,
            &["'deploy'"],
        ),
        case(
            "misspelt flag",
            &["render", "--spek", spec],
            2,
            &["'--spek'"],
        ),
        case("missing --spec", &["render"], 2, &["--spec <FILE>"]),
        case(
            "--spec without a value",
            &["render", "--spec"],
            2,
            &["'--spec <FILE>'"],
        ),
        case(
            "unknown output format",
            &["apply", "--spec", spec, "--output", "yaml"],
            2,
            &["'yaml'", "'--output <OUTPUT>'"],
        ),
        case(
            "zero timeout",
            &["wait", "--spec", spec, "--timeout", "0s"],
            2,
            &["'0s'", "'--timeout <DURATION>'", "positive duration"],
        ),
        case(
            "timeout in words",
            &["up", "--spec", spec, "--timeout", "soon"],
            2,
            &["'soon'", "'--timeout <DURATION>'"],
        ),
        case(
            "timeout without a unit",
            &["repair", "--spec", spec, "--timeout", "10"],
            2,
            &["'10'", "'--timeout <DURATION>'", "30s, 5m or 1h30m"],
        ),
        case(
            "negative unreachable timeout",
            &["apply", "--spec", spec, "--unreachable-timeout", "-5m"],
            2,
            &["'-5m'", "'--unreachable-timeout <DURATION>'"],
        ),
        case(
            "zero CRD timeout",
            &["apply", "--spec", spec, "--crd-timeout", "0s"],
            2,
            &["'0s'", "'--crd-timeout <DURATION>'", "positive duration"],
        ),
        case(
            "cluster flag on render",
            &["render", "--spec", spec, "--kubeconfig", "kc"],
            2,
            &["'--kubeconfig'"],
        ),
        case(
            "TLS flag on render",
            &["render", "--spec", spec, "--insecure-skip-tls-verify"],
            2,
            &["'--insecure-skip-tls-verify'"],
        ),
        case(
            "value for a switch",
            &["apply", "--spec", spec, "--dry-run=maybe"],
            2,
            &["'maybe'", "'--dry-run'"],
        ),
        case(
            "timeout on status",
            &["status", "--spec", spec, "--timeout", "1m"],
            2,
            &["'--timeout'"],
        ),
        case(
            "dry run on diff",
            &["diff", "--spec", spec, "--dry-run"],
            2,
            &["'--dry-run'"],
        ),
        case(
            "--spec twice",
            &["render", "--spec", spec, "--spec", spec],
            2,
            &["'--spec <FILE>'"],
        ),
        case(
            "stray argument",
            &["render", "--spec", spec, "extra"],
            2,
            &["'extra'"],
        ),
        case(
            "--context without a value",
            &["apply", "--spec", spec, "--context"],
            2,
            &["'--context <NAME>'"],
        ),
    ]
}

/// Files that are not a spec (exit 3), and an output path in the way (exit 1), written
/// into `d`.
fn files_that_are_not_a_spec(d: &Path) -> Vec<Case> {
    let example = std::fs::read_to_string(EXAMPLE).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = d.join(name);
        std::fs::write(&path, bytes).unwrap();
        s(&path)
    };
    let folder = d.join("folder");
    std::fs::create_dir(&folder).unwrap();
    let folder = s(&folder);
    let latin1 = write(
        "latin1.yaml",
        b"apiVersion: catalyst.openova.io/v1alpha1\nkind: Sovereign\nmetadata:\n  name: caf\xe9\n",
    );
    let tabs = write(
        "tabs.yaml",
        b"apiVersion: catalyst.openova.io/v1alpha1\nkind: Sovereign\nmetadata:\n\tname: x\n",
    );
    let two_docs = write("two.yaml", format!("{example}---\n{example}").as_bytes());
    let binary = write("binary.yaml", b"\x00\x01\x02\x03");
    let valid = write("valid.yaml", example.as_bytes());
    let out_blocked = write("out-is-a-file", b"");
    let unclosed = write(
        "unclosed.yaml",
        example
            .replace("kind: Sovereign", "kind: [Sovereign")
            .as_bytes(),
    );
    vec![
        case(
            "spec is a directory",
            &["render", "--spec", &folder],
            3,
            &[
                "folder: cannot read the file: Is a directory",
                "expected a readable YAML file",
            ],
        ),
        case(
            "spec is not UTF-8",
            &["render", "--spec", &latin1],
            3,
            &["latin1.yaml: cannot read the file: stream did not contain valid UTF-8"],
        ),
        case(
            "tab indentation",
            &["render", "--spec", &tabs],
            3,
            &["tabs.yaml:4:2: YAML syntax error: tabs disallowed"],
        ),
        case(
            "two documents",
            &["render", "--spec", &two_docs],
            3,
            &[
                "two.yaml:",
                "holds more than one YAML document",
                "expected exactly one document",
            ],
        ),
        case(
            "binary file",
            &["render", "--spec", &binary],
            3,
            &["binary.yaml:1:1: YAML syntax error"],
        ),
        case(
            "unclosed flow sequence, position of the error",
            &["render", "--spec", &unclosed],
            3,
            &["unclosed.yaml:", "YAML syntax error"],
        ),
        case(
            "defaults file missing",
            &[
                "render",
                "--spec",
                &valid,
                "--defaults",
                "/nonexistent/defaults.yaml",
            ],
            3,
            &["/nonexistent/defaults.yaml: cannot read the file: No such file"],
        ),
        case(
            "defaults file is a directory",
            &["render", "--spec", &valid, "--defaults", &folder],
            3,
            &["folder: cannot read the file: Is a directory"],
        ),
        case(
            "--out is an existing file",
            &["render", "--spec", &valid, "--out", &out_blocked],
            1,
            // The cause once, ending the line.
            &[&format!(
                "error: cannot write {out_blocked}: File exists (os error 17)\n"
            )],
        ),
    ]
}

/// Runs the case of `name` in `cases`, failing with what it did not do as it should.
async fn run_named(cases: Vec<Case>, name: &str) {
    let case = cases
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no case named {name:?}"));
    if let Some(failure) = run_one(&case).await {
        panic!("{failure}");
    }
}

/// A table of cases: each test builds it afresh, runs one case and finishes the table.
trait Table {
    /// Runs the case `name`, and the checks that finish the table.
    async fn run(&self, name: &str);
    /// The names of the table's cases, in order.
    async fn names(&self) -> Vec<String>;
}

/// A table of files written into a directory of its own; it needs no world.
struct Files(fn(&Path) -> Vec<Case>);

impl Table for Files {
    async fn run(&self, name: &str) {
        let dir = tempfile::tempdir().unwrap();
        run_named((self.0)(dir.path()), name).await;
        // No case may write into a file that stands where its output would go.
        if let Ok(blocked) = std::fs::read(dir.path().join("out-is-a-file")) {
            assert_eq!(blocked, b"", "the file in the way of --out was left alone");
        }
    }

    async fn names(&self) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        (self.0)(dir.path()).into_iter().map(|c| c.name).collect()
    }
}

/// A table on the world, made by its function; finishing it checks that nothing of the
/// Sovereign was written and removes what the table made ([`WorldTable::finish`]).
struct OnWorld<F>(F);

impl<F: AsyncFn(&World, &kube::Client, &Path) -> WorldTable> Table for OnWorld<F> {
    async fn run(&self, name: &str) {
        let world = World::from_env();
        let client = world.kube().await;
        let dir = tempfile::tempdir().unwrap();
        let mut table = (self.0)(&world, &client, dir.path()).await;
        run_named(std::mem::take(&mut table.cases), name).await;
        table.finish(&client, name).await;
    }

    async fn names(&self) -> Vec<String> {
        let world = World::from_env();
        let client = world.kube().await;
        let dir = tempfile::tempdir().unwrap();
        let mut table = (self.0)(&world, &client, dir.path()).await;
        let names = std::mem::take(&mut table.cases)
            .into_iter()
            .map(|c| c.name)
            .collect();
        table.finish(&client, "listing the cases").await;
        names
    }
}

/// One test per case of a [`Table`], named so each runs alone, and a test that every case
/// of the table has its test.
macro_rules! one_test_per_case {
    ($module:ident, $table:expr, { $($test:ident: $name:literal,)* }) => {
        mod $module {
            use super::*;

            $(
                #[tokio::test]
                async fn $test() {
                    $table.run($name).await;
                }
            )*

            #[tokio::test]
            async fn every_case_has_its_own_test() {
                let tested = [$($name),*];
                assert_eq!(tested.as_slice(), $table.names().await.as_slice());
            }
        }
    };
}

one_test_per_case!(command_line_mistakes_exit_2_with_one_message, Files(|_| command_line_mistakes()), {
    unknown_command: "unknown command",
    misspelt_flag: "misspelt flag",
    missing_spec: "missing --spec",
    spec_without_a_value: "--spec without a value",
    unknown_output_format: "unknown output format",
    zero_timeout: "zero timeout",
    timeout_in_words: "timeout in words",
    timeout_without_a_unit: "timeout without a unit",
    negative_unreachable_timeout: "negative unreachable timeout",
    zero_crd_timeout: "zero CRD timeout",
    cluster_flag_on_render: "cluster flag on render",
    tls_flag_on_render: "TLS flag on render",
    value_for_a_switch: "value for a switch",
    timeout_on_status: "timeout on status",
    dry_run_on_diff: "dry run on diff",
    spec_twice: "--spec twice",
    stray_argument: "stray argument",
    context_without_a_value: "--context without a value",
});

one_test_per_case!(files_that_are_not_a_spec_exit_3_and_write_nothing, Files(files_that_are_not_a_spec), {
    spec_is_a_directory: "spec is a directory",
    spec_is_not_utf8: "spec is not UTF-8",
    tab_indentation: "tab indentation",
    two_documents: "two documents",
    binary_file: "binary file",
    unclosed_flow_sequence: "unclosed flow sequence, position of the error",
    defaults_file_missing: "defaults file missing",
    defaults_file_is_a_directory: "defaults file is a directory",
    out_is_an_existing_file: "--out is an existing file",
});

/// A table of cases on the world, the Sovereign they run for, and what finishing it after
/// its cases checks and removes.
struct WorldTable {
    sovereign: String,
    cases: Vec<Case>,
    after: After,
}

enum After {
    /// Nothing of the Sovereign may exist on the world's apiserver.
    Untouched,
    /// Nor on this second apiserver the cases ran against, stopped then.
    UntouchedHereToo(Box<BareApiserver>),
    /// Nothing of the Sovereign may exist; the restricted user of this namespace goes.
    UntouchedWithoutReader(String),
    /// The cases ran against an applied kit, which goes.
    DeleteKit,
}

impl WorldTable {
    async fn finish(self, client: &kube::Client, what: &str) {
        let sovereign = &self.sovereign;
        match self.after {
            After::Untouched => assert_untouched(client, sovereign, what).await,
            After::UntouchedHereToo(bare) => {
                assert_untouched(&bare.client, sovereign, what).await;
                assert_untouched(
                    client,
                    sovereign,
                    &format!("{what} (the world's apiserver)"),
                )
                .await;
            }
            After::UntouchedWithoutReader(reader_ns) => {
                assert_untouched(client, sovereign, what).await;
                use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
                let _ = kube::Api::<ClusterRoleBinding>::all(client.clone())
                    .delete(&reader_ns, &Default::default())
                    .await;
                let _ = kube::Api::<ClusterRole>::all(client.clone())
                    .delete(&reader_ns, &Default::default())
                    .await;
                crate::support::delete_namespace(client, &reader_ns).await;
            }
            After::DeleteKit => crate::support::delete_namespace(client, sovereign).await,
        }
    }
}

/// A Sovereign of the world in a namespace of its own, which no case may create.
fn world_spec(world: &World, dir: &Path, prefix: &str) -> (String, String) {
    let name = unique(prefix);
    let spec = world.sovereign_file(dir, &name, "");
    (name, s(&spec))
}

/// The world's kubeconfig text with `edit` applied, written to `dir/<file>`.
fn kubeconfig_variant(
    world: &World,
    dir: &Path,
    file: &str,
    edit: impl Fn(&str) -> String,
) -> String {
    let text = std::fs::read_to_string(&world.kubeconfig).unwrap();
    let path = dir.join(file);
    std::fs::write(&path, edit(&text)).unwrap();
    s(&path)
}

/// Replaces the value of the first `key: value` line.
fn set(text: &str, key: &str, value: &str) -> String {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{key}:")))
        .unwrap_or_else(|| panic!("{key} in the kubeconfig"));
    let indent = &line[..line.len() - line.trim_start().len()];
    text.replacen(line, &format!("{indent}{key}: {value}"), 1)
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A certificate authority that signed nothing the world trusts, made with openssl.
fn foreign_ca(dir: &Path) -> (PathBuf, PathBuf) {
    let (crt, key) = (dir.join("foreign-ca.crt"), dir.join("foreign-ca.key"));
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=foreign-ca", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl makes a CA");
    (crt, key)
}

/// Kubeconfig problems, each with its documented exit code, for the Sovereign `name`.
async fn kubeconfig_problems(world: &World, _: &kube::Client, d: &Path) -> WorldTable {
    let (name, spec) = world_spec(world, d, "badkc");
    let (ca, _) = foreign_ca(d);
    let foreign_ca = b64(&std::fs::read(&ca).unwrap());
    let token = format!("canary-{}", unique("token"));
    let key_line = std::fs::read_to_string(&world.kubeconfig)
        .unwrap()
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("client-key-data: ")
                .map(str::to_owned)
        })
        .unwrap();

    let kc = |file: &str, edit: &dyn Fn(&str) -> String| kubeconfig_variant(world, d, file, edit);
    let empty = kc("empty", &|_| String::new());
    let unparsable = kc("unparsable", &|_| "apiVersion: v1\nclusters: [\n".into());
    let not_base64 = kc("not-base64", &|t| {
        set(t, "client-certificate-data", "%%not-base64%%")
    });
    let bad_cert = kc("bad-cert", &|t| {
        set(
            t,
            "client-certificate-data",
            &b64(b"-----BEGIN CERTIFICATE-----\nbm90\n-----END CERTIFICATE-----\n"),
        )
    });
    let bad_key = kc("bad-key", &|t| {
        set(
            t,
            "client-key-data",
            &b64(b"-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"),
        )
    });
    let ca_file = kc("ca-file", &|t| {
        t.replace(
            &format!(
                "certificate-authority-data: {}",
                t.split("certificate-authority-data: ")
                    .nth(1)
                    .unwrap()
                    .lines()
                    .next()
                    .unwrap()
            ),
            "certificate-authority: /nonexistent/ca.crt",
        )
    });
    let wrong_ca = kc("wrong-ca", &|t| {
        set(t, "certificate-authority-data", &foreign_ca)
    });
    let insecure = kc("insecure", &|t| {
        let ca_line = t
            .lines()
            .find(|l| l.contains("certificate-authority-data:"))
            .unwrap();
        t.replace(ca_line, "    insecure-skip-tls-verify: true")
    });
    let bad_url = kc("bad-url", &|t| set(t, "server", "\"not a url\""));
    let no_current = kc("no-current", &|t| set(t, "current-context", "gone"));
    let token_user = kc("token-user", &|t| {
        let start = t.find("users:").unwrap();
        let end = t.find("contexts:").unwrap();
        format!(
            "{}users:\n- name: admin\n  user:\n    token: {token}\n{}",
            &t[..start],
            &t[end..]
        )
    });
    let unreachable = s(&world.unreachable_kubeconfig(d));
    let world_kc = s(&world.kubeconfig);

    let apply = |kubeconfig: &str| -> Vec<String> {
        [
            "apply",
            "--spec",
            &spec,
            "--kubeconfig",
            kubeconfig,
            "--unreachable-timeout",
            "2s",
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let with = |name: &str, args: Vec<String>, code: i32, expect: &[&str]| Case {
        args,
        ..case(name, &[], code, expect)
    };
    let mut json_wrong_ca = apply(&wrong_ca);
    json_wrong_ca.extend(["--output".into(), "json".into()]);
    let mut status_wrong_ca = apply(&wrong_ca);
    status_wrong_ca[0] = "status".into();
    let mut wait_wrong_ca = apply(&wrong_ca);
    wait_wrong_ca[0] = "wait".into();
    let mut context = apply(&world_kc);
    context.extend(["--context".into(), "nope".into()]);
    let mut json_unreachable = apply(&unreachable);
    json_unreachable.extend(["--output".into(), "json".into()]);

    let cases = vec![
        with(
            "kubeconfig missing",
            apply("/nonexistent/kubeconfig"),
            3,
            &[
                "kubeconfig /nonexistent/kubeconfig: failed to read kubeconfig",
                "No such file",
            ],
        ),
        case(
            "$KUBECONFIG missing",
            &["apply", "--spec", &spec],
            3,
            &[
                "no cluster configured",
                "/nonexistent/kubeconfig",
                "expected --kubeconfig FILE",
            ],
        )
        .env("KUBECONFIG", Some("/nonexistent/kubeconfig")),
        with(
            "kubeconfig empty",
            apply(&empty),
            3,
            &["empty: sets no current-context and no --context was given"],
        ),
        with(
            "kubeconfig unparsable",
            apply(&unparsable),
            3,
            &[
                "unparsable: failed to parse kubeconfig YAML",
                "line 2 column 11",
            ],
        ),
        with(
            "client certificate not base64",
            apply(&not_base64),
            3,
            &["not-base64: failed to parse kubeconfig YAML: error: line"],
        )
        .forbid(&key_line),
        with(
            "client certificate broken",
            apply(&bad_cert),
            3,
            &[
                "bad-cert: its client certificate, client key or certificate authority cannot be used",
            ],
        ),
        with(
            "client key broken",
            apply(&bad_key),
            3,
            &[
                "bad-key: its client certificate, client key or certificate authority cannot be used",
                "private key",
            ],
        ),
        with(
            "certificate authority file missing",
            apply(&ca_file),
            3,
            &[
                "ca-file: failed to load certificate authority",
                "/nonexistent/ca.crt",
            ],
        ),
        with(
            "server URL malformed",
            apply(&bad_url),
            3,
            &["bad-url: failed to parse cluster url"],
        ),
        with(
            "unknown --context",
            context,
            3,
            &["--context `nope` is not in the file; expected one of: `testenv`"],
        ),
        with(
            "current-context names no context",
            apply(&no_current),
            3,
            &["no-current: current-context `gone` is not in the file; expected one of: `testenv`"],
        ),
        with(
            "kubeconfig skips TLS verification on its own",
            apply(&insecure),
            3,
            &[
                "insecure: cluster https://127.0.0.1:",
                "sets insecure-skip-tls-verify: true",
                "pass --insecure-skip-tls-verify",
            ],
        ),
        with(
            "wrong certificate authority: apply",
            apply(&wrong_ca),
            9,
            &[
                "TLS verification failed: the apiserver's certificate is not trusted",
                "UnknownIssuer",
            ],
        ),
        with(
            "wrong certificate authority: json",
            json_wrong_ca,
            9,
            &["TLS verification failed"],
        ),
        with(
            "wrong certificate authority: status",
            status_wrong_ca,
            9,
            &["TLS verification failed"],
        ),
        with(
            "wrong certificate authority: wait",
            wait_wrong_ca,
            9,
            &["cannot watch", "TLS verification failed"],
        ),
        with(
            "token refused",
            apply(&token_user),
            8,
            &["unauthorized (HTTP 401)"],
        )
        .forbid(&token),
        with(
            "apiserver unreachable",
            apply(&unreachable),
            6,
            &["the apiserver stayed unreachable", "for 2s"],
        ),
        with(
            "apiserver unreachable: json",
            json_unreachable,
            6,
            &["the apiserver stayed unreachable"],
        ),
    ];
    WorldTable {
        sovereign: name,
        cases,
        after: After::Untouched,
    }
}

one_test_per_case!(kubeconfig_problems_exit_with_their_documented_codes_and_apply_nothing, OnWorld(kubeconfig_problems), {
    kubeconfig_missing: "kubeconfig missing",
    kubeconfig_variable_names_a_missing_file: "$KUBECONFIG missing",
    kubeconfig_empty: "kubeconfig empty",
    kubeconfig_unparsable: "kubeconfig unparsable",
    client_certificate_not_base64: "client certificate not base64",
    client_certificate_broken: "client certificate broken",
    client_key_broken: "client key broken",
    certificate_authority_file_missing: "certificate authority file missing",
    server_url_malformed: "server URL malformed",
    unknown_context: "unknown --context",
    current_context_names_no_context: "current-context names no context",
    kubeconfig_skips_tls_verification_on_its_own: "kubeconfig skips TLS verification on its own",
    wrong_certificate_authority_apply: "wrong certificate authority: apply",
    wrong_certificate_authority_json: "wrong certificate authority: json",
    wrong_certificate_authority_status: "wrong certificate authority: status",
    wrong_certificate_authority_wait: "wrong certificate authority: wait",
    token_refused: "token refused",
    apiserver_unreachable: "apiserver unreachable",
    apiserver_unreachable_json: "apiserver unreachable: json",
});

#[tokio::test]
async fn skipping_tls_verification_takes_the_flag_and_warns() {
    let world = World::from_env();
    let client = world.kube().await;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (name, spec) = world_spec(&world, d, "insecure");
    let (ca, _) = foreign_ca(d);
    let foreign_ca = b64(&std::fs::read(&ca).unwrap());
    let wrong_ca = kubeconfig_variant(&world, d, "wrong-ca", |t| {
        set(t, "certificate-authority-data", &foreign_ca)
    });
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_catalyst-bootstrap"))
        .args([
            "apply",
            "--dry-run",
            "--spec",
            &spec,
            "--kubeconfig",
            &wrong_ca,
        ])
        .args(["--insecure-skip-tls-verify", "--output", "json"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(
            "warning: --insecure-skip-tls-verify: the apiserver's TLS certificate is not verified"
        ),
        "{stderr}"
    );
    let events: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events[0]["phase"], "connect", "{stdout}");
    assert_eq!(events[0]["state"], "warning", "{stdout}");
    assert!(
        events.iter().any(|e| e["state"] == "would-create"),
        "{stdout}"
    );
    assert_untouched(&client, &name, "dry run").await;
}

/// A second kube-apiserver on the world's etcd under a prefix of its own: an empty cluster
/// with no CRDs at all, so the world's CRDs, which other tests need, stay in place.
struct BareApiserver {
    _process: tokio::process::Child,
    kubeconfig: String,
    client: kube::Client,
}

async fn bare_apiserver(world: &World, dir: &Path) -> BareApiserver {
    let (process, port) = world.second_apiserver(
        &[format!("--etcd-prefix=/{}", unique("bad-input"))],
        &dir.join("bare-apiserver.log"),
    );
    let kubeconfig = kubeconfig_variant(world, dir, "bare-kubeconfig", |t| {
        let server = t
            .lines()
            .find_map(|l| l.trim().strip_prefix("server: "))
            .unwrap();
        t.replace(server, &format!("https://127.0.0.1:{port}"))
    });
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kubeconfig).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    for _ in 0..600 {
        let ready = client
            .request_text(http::Request::get("/readyz").body(Vec::new()).unwrap())
            .await;
        if ready.is_ok_and(|r| r.trim() == "ok") {
            return BareApiserver {
                _process: process,
                kubeconfig,
                client,
            };
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "the second kube-apiserver did not become ready; see {}",
        dir.join("bare-apiserver.log").display()
    );
}

/// Every command against an apiserver without the kit's CRDs.
async fn missing_crds(world: &World, _: &kube::Client, d: &Path) -> WorldTable {
    let (name, spec) = world_spec(world, d, "nocrd");
    let bare = bare_apiserver(world, d).await;
    let run = |command: &str, extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = [command, "--spec", &spec, "--kubeconfig", &bare.kubeconfig]
            .map(str::to_owned)
            .to_vec();
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args
    };
    let with = |name: &str, args: Vec<String>, code: i32, expect: &[&str]| Case {
        args,
        ..case(name, &[], code, expect)
    };
    let crd = "is not installed; it comes from Flux";
    let cases = vec![
        with(
            "apply",
            run("apply", &["--crd-timeout", "2s"]),
            5,
            &[crd, "gave up after 2s"],
        ),
        with(
            "apply, dry run",
            run("apply", &["--dry-run", "--crd-timeout", "2s"]),
            5,
            &[crd],
        ),
        with("diff", run("diff", &["--crd-timeout", "2s"]), 5, &[crd]),
        with(
            "up",
            run("up", &["--crd-timeout", "2s", "--timeout", "5s"]),
            5,
            &[crd],
        ),
        with(
            "repair",
            run("repair", &["--crd-timeout", "2s", "--timeout", "5s"]),
            5,
            &[crd],
        ),
        with(
            "apply, json",
            run("apply", &["--crd-timeout", "2s", "--output", "json"]),
            5,
            &[crd],
        ),
        with(
            "wait",
            run("wait", &["--timeout", "5s"]),
            5,
            &["cannot watch", "is not installed; it comes from Flux"],
        ),
    ];
    WorldTable {
        sovereign: name,
        cases,
        after: After::UntouchedHereToo(Box::new(bare)),
    }
}

one_test_per_case!(missing_crds_end_the_wait_with_exit_5_naming_the_crd_and_write_nothing, OnWorld(missing_crds), {
    apply: "apply",
    apply_dry_run: "apply, dry run",
    diff: "diff",
    up: "up",
    repair: "repair",
    apply_json: "apply, json",
    wait: "wait",
});

/// A ServiceAccount that may only read namespaces, and a kubeconfig with its token
/// (TokenRequest), as a restricted user of the world.
async fn restricted_kubeconfig(
    world: &World,
    client: &kube::Client,
    dir: &Path,
) -> (String, String, String) {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    let ns = crate::support::namespace(client, "bad-input-rbac").await;
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "reader"}})).unwrap();
    let accounts = kube::Api::<ServiceAccount>::namespaced(client.clone(), &ns);
    accounts
        .create(&Default::default(), &sa)
        .await
        .expect("create ServiceAccount");
    let role: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": ns},
        "rules": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]}]
    }))
    .unwrap();
    kube::Api::<ClusterRole>::all(client.clone())
        .create(&Default::default(), &role)
        .await
        .expect("create ClusterRole");
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": ns},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns}]
    }))
    .unwrap();
    kube::Api::<ClusterRoleBinding>::all(client.clone())
        .create(&Default::default(), &binding)
        .await
        .expect("create ClusterRoleBinding");
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(3600),
            ..Default::default()
        },
        ..Default::default()
    };
    let token = accounts
        .create_token_request("reader", &Default::default(), &request)
        .await
        .expect("TokenRequest")
        .status
        .expect("a token")
        .token;
    let kubeconfig = kubeconfig_variant(world, dir, "restricted", |t| {
        let start = t.find("users:").unwrap();
        let end = t.find("contexts:").unwrap();
        format!(
            "{}users:\n- name: admin\n  user:\n    token: {token}\n{}",
            &t[..start],
            &t[end..]
        )
    });
    (kubeconfig, token, ns)
}

/// Every command as a user who may only read namespaces.
async fn restricted_user(world: &World, client: &kube::Client, d: &Path) -> WorldTable {
    let (name, spec) = world_spec(world, d, "rbac");
    let (kubeconfig, token, reader_ns) = restricted_kubeconfig(world, client, d).await;
    let run = |command: &str, extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = [command, "--spec", &spec, "--kubeconfig", &kubeconfig]
            .map(str::to_owned)
            .to_vec();
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args
    };
    let with = |name: &str, args: Vec<String>, expect: &[&str]| {
        Case {
            args,
            ..case(name, &[], 8, expect)
        }
        .forbid(&token)
    };
    let reader = "system:serviceaccount:";
    let cases = vec![
        with(
            "apply",
            run("apply", &[]),
            &["forbidden: cannot get configmaps", reader],
        ),
        with(
            "apply, dry run",
            run("apply", &["--dry-run"]),
            &["forbidden: cannot get configmaps"],
        ),
        with(
            "diff",
            run("diff", &[]),
            &["forbidden: cannot get configmaps"],
        ),
        with(
            "apply, json",
            run("apply", &["--output", "json"]),
            &["forbidden: cannot get configmaps"],
        ),
        with(
            "up",
            run("up", &["--timeout", "5s"]),
            &["forbidden: cannot get configmaps"],
        ),
        with(
            "repair",
            run("repair", &["--timeout", "5s"]),
            &["forbidden: cannot get configmaps"],
        ),
        with(
            "status",
            run("status", &[]),
            &["forbidden: cannot get helmreleases.helm.toolkit.fluxcd.io"],
        ),
        with(
            "wait",
            run("wait", &["--timeout", "5s"]),
            &["permission denied: cannot watch", "is forbidden"],
        ),
    ];
    WorldTable {
        sovereign: name,
        cases,
        after: After::UntouchedWithoutReader(reader_ns),
    }
}

one_test_per_case!(a_restricted_user_gets_exit_8_naming_verb_and_resource_and_nothing_is_created, OnWorld(restricted_user), {
    apply: "apply",
    apply_dry_run: "apply, dry run",
    diff: "diff",
    apply_json: "apply, json",
    up: "up",
    repair: "repair",
    status: "status",
    wait: "wait",
});

/// The spec of `world_spec` reading the PowerDNS key from a file that does not exist.
fn key_file_missing(spec: &str, d: &Path) -> String {
    let text = std::fs::read_to_string(spec).unwrap();
    let env_line = "    apiKeyEnv: PDNS_API_KEY";
    assert!(text.contains(env_line), "{text}");
    let key_file = d.join("key-file.yaml");
    std::fs::write(
        &key_file,
        text.replace(env_line, "    apiKeyFile: /nonexistent/pdns-api-key"),
    )
    .unwrap();
    s(&key_file)
}

/// The DNS proof's API key is input too: `up`, `repair` and `wait` refuse a missing one
/// before their first request to the cluster, so nothing of the kit is written.
async fn missing_powerdns_keys(world: &World, _: &kube::Client, d: &Path) -> WorldTable {
    let (name, spec) = world_spec(world, d, "nokey");
    let key_file = key_file_missing(&spec, d);
    let mut cases = Vec::new();
    for command in ["up", "repair", "wait"] {
        let args = |spec: &str, extra: &[&str]| {
            let mut args: Vec<String> = [command, "--spec", spec, "--timeout", "20s"]
                .map(str::to_owned)
                .to_vec();
            args.extend(extra.iter().map(|a| (*a).to_owned()));
            args
        };
        cases.push(
            Case {
                args: args(&spec, &[]),
                ..case(
                    &format!("{command}, key variable unset"),
                    &[],
                    3,
                    &["error: PowerDNS API key: environment variable PDNS_API_KEY is not set"],
                )
            }
            .env("PDNS_API_KEY", None),
        );
        cases.push(Case {
            args: args(&key_file, &["--output", "json"]),
            ..case(
                &format!("{command}, key file missing, json"),
                &[],
                3,
                &["PowerDNS API key: cannot read /nonexistent/pdns-api-key"],
            )
        });
    }
    WorldTable {
        sovereign: name,
        cases,
        after: After::Untouched,
    }
}

one_test_per_case!(a_missing_powerdns_key_is_refused_before_the_first_request, OnWorld(missing_powerdns_keys), {
    up_key_variable_unset: "up, key variable unset",
    up_key_file_missing_json: "up, key file missing, json",
    repair_key_variable_unset: "repair, key variable unset",
    repair_key_file_missing_json: "repair, key file missing, json",
    wait_key_variable_unset: "wait, key variable unset",
    wait_key_file_missing_json: "wait, key file missing, json",
});

/// With `--output json` the refusal of a missing key is the result event, the only line on
/// stdout.
#[tokio::test]
async fn a_missing_powerdns_key_in_json_is_the_only_event() {
    let world = World::from_env();
    let client = world.kube().await;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (name, spec) = world_spec(&world, d, "nokey-json");
    let key_file = key_file_missing(&spec, d);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_catalyst-bootstrap"))
        .args(["up", "--spec", &key_file, "--output", "json"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("a result event")).unwrap();
    assert_eq!(result["phase"], "result", "{stdout}");
    assert_eq!(result["exit_code"], 3, "{stdout}");
    assert!(
        result["message"]
            .as_str()
            .unwrap()
            .contains("cannot read /nonexistent/pdns-api-key"),
        "{stdout}"
    );
    assert_eq!(
        stdout.lines().count(),
        1,
        "no event before the refusal: {stdout}"
    );
    assert_untouched(&client, &name, "a missing PowerDNS key").await;
}

/// A kit the world considers healthy (applied, its Deployment's pods Ready, the HelmRelease
/// Ready as helm-controller would report it) in a zone of its own, so `wait` reaches the
/// DNS proof.
async fn healthy_kit(world: &World, client: &kube::Client, dir: &Path) -> (String, String) {
    let (name, spec) = world_spec(world, dir, "pdnsbad");
    let zone = format!("{name}.{}", world.pdns_zone);
    world.pdns().create_zone(&zone).await;
    // One record to prove, so the proof must read the zone.
    // spec.verify is the last block of the world's Sovereign.
    let text = std::fs::read_to_string(&spec).unwrap();
    let verify = text.rsplit_once("\n  verify:\n").expect("spec.verify").1;
    assert!(verify.lines().all(|l| l.starts_with("    ")), "{text}");
    let text = format!("{}\n    hostnames: [probe.{zone}]\n", text.trim_end());
    std::fs::write(&spec, text).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_catalyst-bootstrap"))
        .args(["apply", "--spec", &spec])
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    crate::support::flux::play_healthy_release(client, &name).await;
    (name, spec)
}

/// `wait` and `up` on a healthy kit whose DNS proof cannot read PowerDNS, or may not.
async fn powerdns_refusals(world: &World, client: &kube::Client, d: &Path) -> WorldTable {
    let (name, spec) = healthy_kit(world, client, d).await;
    let text = std::fs::read_to_string(&spec).unwrap();
    let variant = |file: &str, from: &str, to: &str| {
        assert!(text.contains(from), "{from} in the spec");
        let path = d.join(file);
        std::fs::write(&path, text.replace(from, to)).unwrap();
        s(&path)
    };
    let closed = variant(
        "closed.yaml",
        &format!("  verify:\n    apiUrl: {}", world.pdns_api_url),
        "  verify:\n    apiUrl: http://127.0.0.1:1",
    );
    // An https listener whose certificate no system root vouches for: the apiserver's.
    let kubeconfig = std::fs::read_to_string(&world.kubeconfig).unwrap();
    let apiserver = kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .unwrap();
    let untrusted = variant(
        "untrusted.yaml",
        &format!("  verify:\n    apiUrl: {}", world.pdns_api_url),
        &format!("  verify:\n    apiUrl: {}", apiserver.trim_end_matches('/')),
    );
    let key_file = variant(
        "key-file.yaml",
        "    apiKeyEnv: PDNS_API_KEY",
        "    apiKeyFile: /nonexistent/pdns-api-key",
    );
    // Nothing to prove: the proof must still read PowerDNS (its server, not a zone).
    let probe_line = format!("    hostnames: [probe.{name}.{}]\n", world.pdns_zone);
    let no_records = variant("no-records.yaml", &probe_line, "");
    let unknown_server = d.join("unknown-server.yaml");
    std::fs::write(
        &unknown_server,
        text.replace(&probe_line, "").replace(
            "    serverId: localhost\n    apiKeyEnv",
            "    serverId: nowhere\n    apiKeyEnv",
        ),
    )
    .unwrap();
    let unknown_server = s(&unknown_server);
    let wrong = format!("canary-{}", unique("pdns"));
    let wait = |spec: &str, extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = ["wait", "--spec", spec, "--timeout", "10s"]
            .map(str::to_owned)
            .to_vec();
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args
    };
    let with = |name: &str, args: Vec<String>, code: i32, expect: &[&str]| {
        Case {
            args,
            ..case(name, &[], code, expect)
        }
        .forbid(&wrong)
        .forbid(&world.pdns_api_key)
    };
    let cases = vec![
        with("wrong key", wait(&spec, &[]), 7, &["credentials"]).env("PDNS_API_KEY", Some(&wrong)),
        with(
            "wrong key, json",
            wait(&spec, &["--output", "json"]),
            7,
            &["credentials"],
        )
        .env("PDNS_API_KEY", Some(&wrong)),
        with(
            "wrong key, up",
            ["up", "--spec", &spec, "--timeout", "10s"]
                .map(str::to_owned)
                .to_vec(),
            7,
            &["credentials"],
        )
        .env("PDNS_API_KEY", Some(&wrong)),
        with(
            "wrong key, no record expected",
            wait(&no_records, &[]),
            7,
            &["error: DNS sync not proven: PowerDNS refused the API key"],
        )
        .env("PDNS_API_KEY", Some(&wrong)),
        with(
            "unknown PowerDNS server id, no record expected",
            wait(&unknown_server, &[]),
            7,
            &["error: no PowerDNS server nowhere at"],
        ),
        with(
            "PowerDNS unreachable",
            wait(&closed, &[]),
            7,
            &["unreachable"],
        ),
        with(
            "PowerDNS certificate not trusted",
            wait(&untrusted, &[]),
            7,
            &["invalid peer certificate"],
        ),
        with("key variable unset", wait(&spec, &[]), 3, &["PDNS_API_KEY"])
            .env("PDNS_API_KEY", None),
        with(
            "key file missing",
            wait(&key_file, &[]),
            3,
            &["/nonexistent/pdns-api-key"],
        ),
    ];
    WorldTable {
        sovereign: name,
        cases,
        after: After::DeleteKit,
    }
}

one_test_per_case!(powerdns_unreachable_or_refusing_the_key_exits_7_and_never_prints_the_key, OnWorld(powerdns_refusals), {
    wrong_key: "wrong key",
    wrong_key_json: "wrong key, json",
    wrong_key_up: "wrong key, up",
    wrong_key_no_record_expected: "wrong key, no record expected",
    unknown_server_id_no_record_expected: "unknown PowerDNS server id, no record expected",
    powerdns_unreachable: "PowerDNS unreachable",
    powerdns_certificate_not_trusted: "PowerDNS certificate not trusted",
    key_variable_unset: "key variable unset",
    key_file_missing: "key file missing",
});
