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
mod exposure;
mod location;
mod names;
mod outbound;
mod pods;
mod prescan;
pub(crate) mod quantity;
mod schema;
mod security;
mod starter;
mod state_url;
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
pub use starter::{starter_with, StarterError, StarterValues};
pub use state_url::StateUrl;
pub use types::*;

/// The largest stack file howdah reads; real ones are a few KiB.
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// Reads and fully validates a stack file. The file name in problems is
/// `path` as given. Only a regular file of at most [`MAX_FILE_BYTES`] is
/// read: a device (`/dev/zero`) or a pipe would be read without end, and
/// the state is kept next to the file.
pub fn load(path: &Path) -> Result<Stack, SpecError> {
    let file_name = path.display().to_string();
    let refuse = |source: &str, line, column, message: String, help: Option<String>| {
        SpecError::new(
            &file_name,
            source,
            vec![SpecProblem {
                line,
                column,
                path: String::new(),
                message,
                help,
            }],
        )
    };
    let cannot_read = |error: std::io::Error| {
        let help = (error.kind() == std::io::ErrorKind::NotFound)
            .then(|| "`howdah init` writes a starter file".to_string());
        refuse(
            "",
            0,
            0,
            format!("cannot read the stack file: {}", io_text(&error)),
            help,
        )
    };
    let metadata = std::fs::metadata(path).map_err(cannot_read)?;
    if metadata.is_dir() {
        return Err(refuse(
            "",
            0,
            0,
            "this is a directory, not a stack file".into(),
            Some(format!(
                "give the file itself, e.g. -f {}",
                path.join("howdah.yaml").display()
            )),
        ));
    }
    if !metadata.is_file() {
        return Err(refuse(
            "",
            0,
            0,
            "not a regular file (a device, pipe or socket): howdah reads the stack file from \
             disk and keeps the state next to it"
                .into(),
            Some("write the stack to a file and give its path".into()),
        ));
    }
    let too_big = || {
        refuse(
            "",
            0,
            0,
            format!(
                "the file is larger than {} MiB: no stack file is that big",
                MAX_FILE_BYTES >> 20
            ),
            Some("is this the stack file? `howdah init` writes one".into()),
        )
    };
    if metadata.len() > MAX_FILE_BYTES {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| {
            std::io::Read::read_to_end(
                &mut std::io::Read::take(file, MAX_FILE_BYTES + 1),
                &mut bytes,
            )
        })
        .map_err(cannot_read)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_big());
    }
    match String::from_utf8(bytes) {
        Ok(source) => parse(&file_name, &source),
        Err(error) => {
            let valid = &error.as_bytes()[..error.utf8_error().valid_up_to()];
            let valid = std::str::from_utf8(valid).unwrap_or_default();
            let line = valid.matches('\n').count() + 1;
            let column = valid
                .rsplit('\n')
                .next()
                .unwrap_or_default()
                .chars()
                .count()
                + 1;
            let byte = error
                .as_bytes()
                .get(valid.len())
                .copied()
                .unwrap_or_default();
            let source = String::from_utf8_lossy(error.as_bytes()).into_owned();
            Err(refuse(
                &source,
                line,
                column,
                format!("the byte 0x{byte:02X} is not UTF-8 text"),
                Some("save the file as UTF-8".into()),
            ))
        }
    }
}

/// An I/O error without Rust's " (os error N)" suffix.
fn io_text(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// Parses and fully validates stack file text; `file_name` is only used in
/// messages.
pub fn parse(file_name: &str, source: &str) -> Result<Stack, SpecError> {
    // Editors that write a byte-order mark do not count it as a column, and
    // serde_norway would read it as the start of a second document.
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    let one = |problem| SpecError::new(file_name, source, vec![problem]);
    if let Some(problem) = prescan::check(source) {
        return Err(one(problem));
    }
    let outline = structural::check_document(source).map_err(one)?;
    let mut stack: Stack = serde_norway::from_str(source)
        .map_err(|error| one(structural::from_serde(source, &error)))?;
    let nulls = structural::null_as_text(source, &stack, &outline.nulls);
    if !nulls.is_empty() {
        return Err(SpecError::new(file_name, source, nulls));
    }
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
    fn load_reads_only_a_bounded_regular_utf8_file() {
        let first = |path: &Path| {
            let error = load(path).unwrap_err();
            let problem = &error.problems()[0];
            (problem.line, problem.column, problem.message.clone())
        };
        let (_, _, device) = first(Path::new("/dev/zero"));
        assert!(device.starts_with("not a regular file"), "{device}");
        let dir = std::env::temp_dir().join(format!("howdah-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (_, _, directory) = first(&dir);
        assert!(directory.contains("is a directory"), "{directory}");

        let big = dir.join("big.yaml");
        let comment = format!("#{}\n", "x".repeat(1023));
        std::fs::write(&big, comment.repeat(4 * 1024 + 1)).unwrap();
        let (_, _, size) = first(&big);
        assert!(size.contains("larger than 4 MiB"), "{size}");

        let latin1 = dir.join("latin1.yaml");
        std::fs::write(&latin1, b"name: demo\ntags: {owner: caf\xe9}\n").unwrap();
        let (line, column, text) = first(&latin1);
        assert_eq!((line, column), (2, 18), "{text}");
        assert!(text.contains("0xE9 is not UTF-8"), "{text}");
        std::fs::remove_dir_all(&dir).ok();
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
    fn the_proxys_settings_are_checked_where_they_are_written() {
        let source = "\
name: demo
target: {kubeconfig: {}}
pachyderm:
  proxy:
    serviceType: NodePort
    serviceAnnotations: {\"bad key!\": x}
    resources: {limits: {memory: 512MB}}
";
        let error = parse("howdah.yaml", source).unwrap_err();
        let paths: Vec<&str> = error.problems().iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "pachyderm.proxy.serviceAnnotations[\"bad key!\"]",
                "pachyderm.proxy.resources.limits.memory"
            ],
            "{error}"
        );
        let stack = parse(
            "howdah.yaml",
            "name: demo\ntarget: {kubeconfig: {}}\npachyderm:\n  console: false\n  proxy: {serviceType: LoadBalancer}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !stack.pachyderm.proxy_enabled(),
            "settings alone do not switch it on"
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

    /// Two mistakes 46 lines apart, deep in a commented file: the report
    /// shows each with two lines before and one after, not every line in
    /// between (miette alone merged the two into one 60-line snippet).
    #[test]
    fn the_fancy_report_shows_each_problem_with_a_little_context() {
        let comments = |from: usize, count: usize| -> String {
            (from..from + count)
                .map(|i| format!("# comment {i}\n"))
                .collect()
        };
        let source = format!(
            "name: demo\ntarget: {{kubeconfig: {{}}}}\n{}pachyderm:\n  etcd:\n    size: 10GB\n{}  postgres:\n    size: 20GB\n{}",
            comments(0, 60),
            comments(60, 44),
            comments(104, 30),
        );
        let error = parse("howdah.yaml", &source).unwrap_err();
        let lines: Vec<usize> = error.problems().iter().map(|p| p.line).collect();
        assert_eq!(lines, [65, 111], "{error}");
        let mut out = String::new();
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
            .render_report(&mut out, &error)
            .unwrap();
        let shown: Vec<usize> = source
            .lines()
            .enumerate()
            .filter(|(_, text)| out.contains(&format!("│ {text}\n")))
            .map(|(i, _)| i + 1)
            .collect();
        assert_eq!(shown, [63, 64, 65, 66, 109, 110, 111, 112], "{out}");
        assert!(out.contains("howdah.yaml:65:11"), "{out}");
        assert!(out.contains("howdah.yaml:111:11"), "{out}");
    }
}
