//! The catalog of installable Pachyderm versions
//! (`charts/pachyderm/versions.yaml`, compiled in): which 2.x releases the
//! chart supports, the images each pins, and the behaviour switches that
//! differ between release lines.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::super::values::Images;

/// An image as the chart of one version pins it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    /// Repository without registry, e.g. `pachyderm/pachd`.
    pub repository: String,
    pub tag: String,
}

impl ImageRef {
    /// `registry/repository:tag`; an empty registry means Docker Hub.
    pub fn qualified(&self, registry: &str) -> String {
        let registry = registry.trim_end_matches('/');
        if registry.is_empty() {
            format!("{}:{}", self.repository, self.tag)
        } else {
            format!("{registry}/{}:{}", self.repository, self.tag)
        }
    }
}

/// The images one Pachyderm version runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionImages {
    pub pachd: ImageRef,
    pub worker: ImageRef,
    pub etcd: ImageRef,
    pub postgres: ImageRef,
    pub pg_bouncer: ImageRef,
    pub console: ImageRef,
    pub proxy: ImageRef,
}

/// The environment differences between minor lines, as templates see them
/// (`chart.features.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Features {
    /// pachd reads GOCDK_ENABLED (2.9, 2.10): set it so STORAGE_URL is used.
    pub gocdk_enabled_env: bool,
    /// pachd reads PACHW_IN_SIDECARS (2.9, 2.10).
    pub pachw_in_sidecars_env: bool,
}

/// A supported Pachyderm version: its images and how it is rendered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionInfo {
    /// e.g. "2.11.6".
    pub version: String,
    /// The minor line, e.g. "2.11".
    pub line: String,
    pub images: VersionImages,
    pub features: Features,
    /// The template directory under charts/pachyderm/.
    pub templates: String,
}

impl VersionInfo {
    /// The fully qualified images of this version under `registry` (empty:
    /// Docker Hub), in the shape [`Values::images`] takes.
    pub fn qualified_images(&self, registry: &str) -> Images {
        Images {
            pachd: self.images.pachd.qualified(registry),
            worker: self.images.worker.qualified(registry),
            etcd: self.images.etcd.qualified(registry),
            postgres: self.images.postgres.qualified(registry),
            pg_bouncer: self.images.pg_bouncer.qualified(registry),
            console: self.images.console.qualified(registry),
            proxy: self.images.proxy.qualified(registry),
        }
    }
}

const VERSIONS_YAML: &str = include_str!("../../../charts/pachyderm/versions.yaml");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Catalog {
    default: String,
    images: Repositories,
    lines: Vec<Line>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Repositories {
    pachd: String,
    worker: String,
    etcd: String,
    postgres: String,
    pg_bouncer: String,
    console: String,
    proxy: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    line: String,
    templates: String,
    tags: LineTags,
    features: Features,
    patches: Vec<String>,
}

/// Tags of the images that do not follow the Pachyderm version.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineTags {
    etcd: String,
    postgres: String,
    pg_bouncer: String,
    proxy: String,
}

fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        // Invariant: versions.yaml is compiled in and parsed by the unit
        // tests (`catalog_parses_and_every_line_has_templates`), so a
        // malformed file cannot reach a release.
        serde_norway::from_str(VERSIONS_YAML)
            .expect("charts/pachyderm/versions.yaml is valid (checked by unit tests)")
    })
}

/// Every supported version, oldest first.
pub fn supported_versions() -> Vec<String> {
    catalog()
        .lines
        .iter()
        .flat_map(|line| line.patches.iter().cloned())
        .collect()
}

/// The version installed when the stack names none.
pub fn default_version() -> String {
    catalog().default.clone()
}

/// What the catalog pins for `version`, or None when it is not supported.
pub fn version_info(version: &str) -> Option<VersionInfo> {
    let catalog = catalog();
    let line = catalog
        .lines
        .iter()
        .find(|line| line.patches.iter().any(|p| p == version))?;
    let image = |repository: &str, tag: &str| ImageRef {
        repository: repository.to_string(),
        tag: tag.to_string(),
    };
    let repos = &catalog.images;
    Some(VersionInfo {
        version: version.to_string(),
        line: line.line.clone(),
        images: VersionImages {
            pachd: image(&repos.pachd, version),
            worker: image(&repos.worker, version),
            etcd: image(&repos.etcd, &line.tags.etcd),
            postgres: image(&repos.postgres, &line.tags.postgres),
            pg_bouncer: image(&repos.pg_bouncer, &line.tags.pg_bouncer),
            console: image(&repos.console, version),
            proxy: image(&repos.proxy, &line.tags.proxy),
        },
        features: line.features,
        templates: line.templates.clone(),
    })
}
