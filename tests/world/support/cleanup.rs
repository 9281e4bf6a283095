//! A failed test cleans up too. Every name [`super::unique`] makes is remembered for the
//! test's thread (a `#[tokio::test]` runs its tasks there); when the test panics, a panic
//! hook prints the objects and events of each namespace of one of those names, which is
//! the failure's context, and then deletes the namespace, so that the long-lived world
//! keeps nothing of a failed test. A test that passes deletes its namespaces itself.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;

thread_local! {
    static NAMES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Kinds worth seeing when a test failed: what the kit and its controllers made.
const KINDS: &str = "all,configmaps,networkpolicies,\
                     helmreleases.helm.toolkit.fluxcd.io,helmcharts.source.toolkit.fluxcd.io";

pub(super) fn remember(name: &str) {
    NAMES.with(|names| names.borrow_mut().push(name.to_owned()));
}

/// Installs the hook once per test process.
pub(super) fn install(kubectl: PathBuf, kubeconfig: PathBuf) {
    static ONCE: Once = Once::new();
    ONCE.call_once(move || {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            let names = NAMES.with(|names| std::mem::take(&mut *names.borrow_mut()));
            for name in names {
                clean_up(&kubectl, &kubeconfig, &name);
            }
        }));
    });
}

fn kubectl(kubectl: &Path, kubeconfig: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .ok()?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    Some(text)
}

fn clean_up(bin: &Path, kubeconfig: &Path, name: &str) {
    let found = kubectl(
        bin,
        kubeconfig,
        &["get", "namespace", name, "--ignore-not-found", "-o", "name"],
    );
    if found.is_none_or(|f| f.trim() != format!("namespace/{name}")) {
        return;
    }
    let objects = kubectl(bin, kubeconfig, &["get", KINDS, "-n", name, "-o", "wide"]);
    let events = kubectl(
        bin,
        kubeconfig,
        &["get", "events", "-n", name, "--sort-by=.lastTimestamp"],
    );
    eprintln!(
        "--- namespace {name} when the test failed ---\n{}\n--- its events ---\n{}",
        objects.unwrap_or_default(),
        events.unwrap_or_default()
    );
    let deleted = kubectl(
        bin,
        kubeconfig,
        &["delete", "namespace", name, "--wait=false"],
    );
    eprintln!("--- {}", deleted.unwrap_or_default().trim());
}
