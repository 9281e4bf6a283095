//! Renders a validated Sovereign into its bootstrap kit: numbered Kubernetes manifests,
//! from the handlebars templates in templates/.

use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::apply::{self, ApplyError, Desired};
use crate::external_dns::UPSTREAM_CHART;
use crate::health::Target;
use crate::spec::Sovereign;

mod context;
mod templates;

use templates::Needs;

/// Rendering failures. On a validated spec each one is a bug or an I/O fault.
#[derive(Debug, Error)]
pub enum RenderError {
    #[error("template {template}: {message}")]
    Template { template: String, message: String },
    #[error("template {template} rendered invalid YAML: {message}")]
    InvalidYaml { template: String, message: String },
    // The cause is part of the message and deliberately not a `source`, so a report of the
    // whole chain does not say it twice.
    #[error("cannot write {}: {cause}", path.display())]
    Write { path: PathBuf, cause: io::Error },
}

/// The rendered manifests, in the kit's file order, and what the health judgement looks at.
#[derive(Debug, Clone, PartialEq)]
pub struct Kit {
    pub manifests: Vec<Manifest>,
    /// The kit's HelmRelease, and the pods its chart creates.
    pub targets: Vec<Target>,
}

/// One rendered manifest: its text and the object it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// e.g. `12-external-dns.yaml`.
    pub file_name: String,
    /// The document, ending in a newline.
    pub yaml: String,
    /// The object, as `apply` takes it.
    pub object: Desired,
}

/// What [`Kit::write_to_dir`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub written: Vec<PathBuf>,
    /// Kit files from an earlier render that this one no longer produces.
    pub removed: Vec<PathBuf>,
}

/// Renders the kit. The Sovereign must have come from [`crate::spec::load`].
pub fn render(sovereign: &Sovereign) -> Result<Kit, RenderError> {
    let context = context::build(sovereign);
    let registry = templates::registry()?;
    let mut manifests = Vec::new();
    for (file_name, _, needs) in templates::MANIFESTS {
        if needs == Needs::Cilium && !sovereign.spec.uses_cilium() {
            continue;
        }
        let yaml = registry
            .render(file_name, &context)
            .map_err(|e| RenderError::Template {
                template: file_name.to_owned(),
                message: e.to_string(),
            })?;
        manifests.push(Manifest::from_yaml(file_name, yaml)?);
    }
    let e = &sovereign.spec.external_dns;
    let release = Target::helm_release(&e.namespace, &e.release_name).with_release_pods(
        &e.namespace,
        &e.release_name,
        UPSTREAM_CHART,
    );
    Ok(Kit {
        manifests,
        targets: vec![release],
    })
}

impl Manifest {
    /// Reads the rendered document back, which proves it is valid YAML holding one
    /// Kubernetes object, and keeps that object for `apply`: the text is parsed once.
    fn from_yaml(file_name: &str, yaml: String) -> Result<Manifest, RenderError> {
        let invalid = |message: String| RenderError::InvalidYaml {
            template: file_name.to_owned(),
            message,
        };
        let doc: serde_json::Value =
            serde_saphyr::from_str(&yaml).map_err(|e| invalid(e.to_string()))?;
        let object = Desired::from_value(file_name, doc).map_err(invalid)?;
        Ok(Manifest {
            file_name: file_name.to_owned(),
            yaml,
            object,
        })
    }

    pub fn api_version(&self) -> String {
        self.object.gvk.api_version()
    }

    pub fn kind(&self) -> &str {
        &self.object.gvk.kind
    }

    pub fn name(&self) -> &str {
        self.object.name()
    }

    pub fn namespace(&self) -> Option<&str> {
        self.object.namespace()
    }
}

impl Kit {
    /// The kit's objects in apply order, as `apply` takes them, and its health targets:
    /// what a cluster command keeps of the kit.
    pub fn into_desired(self) -> Result<(Vec<Desired>, Vec<Target>), ApplyError> {
        let objects = self.manifests.into_iter().map(|m| m.object).collect();
        Ok((apply::in_apply_order(objects)?, self.targets))
    }

    /// All manifests as one multi-document YAML stream.
    pub fn to_multi_doc(&self) -> String {
        self.manifests
            .iter()
            .map(|m| format!("---\n{}", m.yaml))
            .collect()
    }

    /// Writes each manifest to `dir/<file_name>`, creating `dir`, and removes kit files
    /// (`NN-*.yaml`) that this kit does not contain. Other files are left alone.
    pub fn write_to_dir(&self, dir: &Path) -> Result<Written, RenderError> {
        let write_error = |path: &Path| {
            let path = path.to_owned();
            move |cause| RenderError::Write { path, cause }
        };
        std::fs::create_dir_all(dir).map_err(write_error(dir))?;
        let mut written = Vec::new();
        for manifest in &self.manifests {
            let path = dir.join(&manifest.file_name);
            // Write beside the target and rename, so a reader never sees half a file.
            let temporary = dir.join(format!(".{}.tmp", manifest.file_name));
            std::fs::write(&temporary, &manifest.yaml).map_err(write_error(&temporary))?;
            std::fs::rename(&temporary, &path).map_err(write_error(&path))?;
            written.push(path);
        }
        let mut removed = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(write_error(dir))? {
            let entry = entry.map_err(write_error(dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let ours = self.manifests.iter().any(|m| m.file_name == name);
            let is_file = entry.file_type().is_ok_and(|t| t.is_file());
            if is_file && is_kit_file_name(&name) && !ours {
                std::fs::remove_file(entry.path()).map_err(write_error(&entry.path()))?;
                removed.push(entry.path());
            }
        }
        removed.sort();
        Ok(Written { written, removed })
    }
}

/// `NN-<anything>.yaml`, the names kit files have.
fn is_kit_file_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() > "00-.yaml".len()
        && bytes[..2].iter().all(u8::is_ascii_digit)
        && bytes[2] == b'-'
        && name.ends_with(".yaml")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kit_file_names() {
        assert!(is_kit_file_name("14-ciliumnetworkpolicy.yaml"));
        assert!(is_kit_file_name("99-old.yaml"));
        assert!(!is_kit_file_name("README.md"));
        assert!(!is_kit_file_name("1-x.yaml"));
        assert!(!is_kit_file_name("10-x.yml"));
        assert!(!is_kit_file_name("10-.yaml"));
        assert!(!is_kit_file_name("kustomization.yaml"));
    }
}
