//! The stack file: its types, parsing, validation, JSON Schema and the
//! starter files `howdah init` writes.
//!
//! Parsing is three passes over the same text, each only when the previous
//! one found nothing: the document's shape (YAML syntax, tabs, duplicate
//! keys, empty file, top level not a mapping), serde into [`Stack`]
//! (unknown keys, wrong types, bad enum values, missing keys; serde stops
//! at the first), then every semantic rule, all of whose problems are
//! reported together. Between the last two, a cloud stack gets what its
//! file leaves out filled in (a cluster, a bucket), so the rules and every
//! later reader see the stack as it will be built. Nothing here touches
//! the network, and nothing but [`load`] touches the filesystem.

mod aws;
mod bucket_url;
mod cloud;
mod de;
mod errors;
mod location;
mod names;
mod pods;
pub(crate) mod quantity;
mod schema;
mod structural;
pub mod types;
mod validate;

#[cfg(test)]
mod corpus_tests;

use std::path::Path;

use de::TARGETS;
use location::{locate, Part, YamlPath};

pub use aws::AWS_REGIONS;
pub use errors::{SpecError, SpecProblem};
pub use schema::json_schema;
pub use types::*;

/// Reads and fully validates a stack file. The file name in problems is
/// `path` as given.
pub fn load(path: &Path) -> Result<Stack, SpecError> {
    let file_name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(source) => parse(&file_name, &source),
        Err(error) => Err(SpecError::new(
            &file_name,
            "",
            vec![SpecProblem {
                line: 0,
                column: 0,
                path: String::new(),
                message: format!("cannot read the stack file: {error}"),
                help: (error.kind() == std::io::ErrorKind::NotFound)
                    .then(|| "`howdah init` writes a starter file".to_string()),
            }],
        )),
    }
}

/// Parses and fully validates stack file text; `file_name` is only used in
/// messages.
pub fn parse(file_name: &str, source: &str) -> Result<Stack, SpecError> {
    // Editors that write a byte-order mark do not count it as a column, and
    // serde_norway would read it as the start of a second document.
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    if let Some(problem) = structural::check_document(source) {
        return Err(SpecError::new(file_name, source, vec![problem]));
    }
    let mut stack: Stack = serde_norway::from_str(source).map_err(|error| {
        let problem = structural::from_serde(source, &error);
        SpecError::new(file_name, source, vec![problem])
    })?;
    fill_cloud_defaults(&mut stack, source);
    let problems = validate::validate(&stack, source);
    if problems.is_empty() {
        Ok(stack)
    } else {
        Err(SpecError::new(file_name, source, problems))
    }
}

/// On a cloud target, what the file leaves out means "howdah creates it":
/// a cluster with the defaults and a new bucket. serde cannot tell an
/// omitted `storage` (whose default, for the kubeconfig target, is local
/// storage) from a written `local:`, so the source is asked; a written one
/// stays for validation to refuse. Runs before validation so the rules see
/// the stack as it will be used. The kubeconfig target is left as parsed.
fn fill_cloud_defaults(stack: &mut Stack, source: &str) {
    if !stack.target.is_cloud() {
        return;
    }
    stack.cluster.get_or_insert_with(Cluster::default);
    let local = YamlPath::of(&["storage", "local"]);
    if locate(source, &local, Part::Key, 0).is_none() {
        stack.storage.local = None;
    }
    stack
        .storage
        .bucket
        .get_or_insert_with(BucketStorage::default);
}

/// The commented starter file for `howdah init --target <target>`; `None`
/// for a target this version cannot stand up.
pub fn starter(target: &str) -> Option<&'static str> {
    match target {
        "kubeconfig" => Some(include_str!("../../templates/init/kubeconfig.yaml")),
        "aws" => Some(include_str!("../../templates/init/aws.yaml")),
        _ => None,
    }
}

/// The targets [`starter`] has a file for.
pub fn starter_targets() -> &'static [&'static str] {
    TARGETS
}

/// The Pachyderm versions this build can install: those of the charts
/// compiled into the binary.
pub(crate) fn supported_versions() -> Vec<String> {
    crate::runtime::chart::supported_versions()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_version_is_the_charts_default() {
        assert!(supported_versions().iter().any(|v| v == DEFAULT_VERSION));
        assert_eq!(DEFAULT_VERSION, crate::runtime::chart::default_version());
    }

    #[test]
    fn every_target_has_a_starter_that_parses_unchanged() {
        for target in starter_targets() {
            let text = starter(target).unwrap_or_default();
            assert!(!text.is_empty(), "{target}");
            if let Err(error) = parse("howdah.yaml", text) {
                panic!("starter for {target} does not parse:\n{error}");
            }
        }
        assert_eq!(starter("gcp"), None);
    }

    #[test]
    fn a_cloud_stack_gets_a_cluster_and_a_bucket_by_default() {
        let stack = parse(
            "howdah.yaml",
            "name: demo\ntarget: {aws: {region: us-east-1}}\n",
        );
        let stack = stack.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stack.cluster, Some(Cluster::default()));
        assert_eq!(stack.cloud_cluster(), Some(&Cluster::default()));
        assert_eq!(stack.storage.local, None);
        assert_eq!(stack.storage.bucket, Some(BucketStorage::default()));
        let pool = &stack.cluster.unwrap_or_default().node_pools[0];
        assert_eq!(
            (
                pool.name.as_str(),
                pool.machine_type.as_str(),
                pool.desired_or_min(),
                pool.max
            ),
            ("default", "m5.large", 2, 4)
        );

        let named = "name: demo\ntarget: {aws: {region: us-east-1}}\nstorage:\n  \
                     dataPolicy: delete\n  bucket: {name: demo-data}\n";
        let named = parse("howdah.yaml", named).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(named.storage.local, None);
        assert_eq!(named.storage.data_policy, DataPolicy::Delete);
        assert_eq!(
            named.storage.bucket.and_then(|b| b.name).as_deref(),
            Some("demo-data")
        );

        let kubeconfig = parse("howdah.yaml", "name: demo\ntarget: {kubeconfig: {}}\n");
        let kubeconfig = kubeconfig.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(kubeconfig.storage, Storage::default());
        assert_eq!(kubeconfig.cluster, None);
        assert_eq!(kubeconfig.cloud_cluster(), None);
    }

    #[test]
    fn load_names_the_file_it_could_not_read() {
        let error = load(Path::new("/nonexistent/howdah.yaml")).unwrap_err();
        let text = error.to_string();
        assert!(
            text.starts_with("/nonexistent/howdah.yaml: cannot read the stack file"),
            "{text}"
        );
    }

    #[test]
    fn all_semantic_problems_are_reported_at_once() {
        let source = "\
name: Demo
target: {kubeconfig: {}}
pachyderm:
  namespace: Pachyderm
  etcd:
    size: 10GB
    replicas: 2
";
        let error = parse("howdah.yaml", source).unwrap_err();
        let located: Vec<(usize, usize, &str)> = error
            .problems()
            .iter()
            .map(|p| (p.line, p.column, p.path.as_str()))
            .collect();
        assert_eq!(
            located,
            vec![
                (1, 7, "name"),
                (4, 14, "pachyderm.namespace"),
                (6, 11, "pachyderm.etcd.size"),
                (7, 15, "pachyderm.etcd.replicas"),
            ]
        );
        let first = error.to_string();
        assert!(
            first.starts_with("howdah.yaml:1:7: name: invalid stack name \"Demo\""),
            "{first}"
        );
    }

    #[test]
    fn the_fancy_report_underlines_each_problem() {
        let source = "name: demo\ntarget: {kubeconfig: {}}\npachyderm:\n  etcd:\n    size: 10GB\n";
        let error = parse("howdah.yaml", source).unwrap_err();
        let mut out = String::new();
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
            .render_report(&mut out, &error)
            .unwrap();
        assert!(out.contains("size: 10GB"), "{out}");
        assert!(out.contains("invalid quantity"), "{out}");
        assert!(out.contains("howdah.yaml:5:11"), "{out}");
    }
}
