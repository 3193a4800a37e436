//! `howdah init` with values: the commented starter of a target with the
//! stack name and kubeconfig context filled in, checked by the same rules
//! as any stack file.

use super::validate::stack_name_problem;
use super::{parse, starter, starter_targets, SpecError};

/// What `howdah init` writes into the starter.
#[derive(Debug, Default, Clone)]
pub struct StarterValues<'a> {
    /// The stack name; default: the starter's `my-stack`.
    pub name: Option<&'a str>,
    /// The kubeconfig context (kubeconfig target only); default: the
    /// kubeconfig's current context.
    pub context: Option<&'a str>,
}

/// Why a starter cannot be written with the values given.
#[derive(Debug, thiserror::Error)]
pub enum StarterError {
    #[error("unknown target `{target}`; available: {available}")]
    UnknownTarget { target: String, available: String },
    /// The name breaks the stack file's rule for `name:`.
    #[error("{message}{}", help.as_ref().map(|h| format!(" (help: {h})")).unwrap_or_default())]
    InvalidName {
        message: String,
        help: Option<String>,
    },
    #[error("a kubeconfig context applies to the kubeconfig target only, not `{target}`")]
    ContextNotApplicable { target: String },
    /// The filled-in file does not validate (e.g. an empty context).
    #[error("{0}")]
    Invalid(SpecError),
}

const STARTER_NAME: &str = "name: my-stack\n";
const STARTER_CONTEXT: &str = "    # context: kind-kind\n";

/// The starter for `target` with `values` filled in. The result is parsed
/// and validated before it is returned, so what `howdah init` writes is
/// always a stack file `howdah validate` accepts.
pub fn starter_with(target: &str, values: &StarterValues<'_>) -> Result<String, StarterError> {
    let Some(text) = starter(target) else {
        return Err(StarterError::UnknownTarget {
            target: target.to_string(),
            available: starter_targets().join(", "),
        });
    };
    let mut text = text.to_string();
    if let Some(name) = values.name {
        if let Some((message, help)) = stack_name_problem(name) {
            return Err(StarterError::InvalidName { message, help });
        }
        // A valid name is a DNS label: a plain YAML scalar, and safe to
        // put in the state path's comment too.
        text = text
            .replacen(STARTER_NAME, &format!("name: {name}\n"), 1)
            .replace(".howdah/my-stack.", &format!(".howdah/{name}."));
    }
    if let Some(context) = values.context {
        if target != "kubeconfig" {
            return Err(StarterError::ContextNotApplicable {
                target: target.to_string(),
            });
        }
        // Any text is a context name: a JSON string is a YAML
        // double-quoted scalar, whatever it holds.
        let quoted = serde_json::to_string(context).unwrap_or_default();
        text = text.replacen(STARTER_CONTEXT, &format!("    context: {quoted}\n"), 1);
    }
    // The unit tests check that every starter holds the lines replaced
    // above; parsing checks the values themselves.
    parse("howdah.yaml", &text).map_err(StarterError::Invalid)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Target;

    #[test]
    fn every_starter_takes_a_name_and_the_kubeconfig_one_a_context() {
        for target in starter_targets() {
            let text = starter_with(
                target,
                &StarterValues {
                    name: Some("ml-dev"),
                    context: None,
                },
            )
            .unwrap_or_else(|e| panic!("{target}: {e}"));
            let stack = parse("howdah.yaml", &text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(stack.name, "ml-dev", "{target}");
            assert!(!text.contains("my-stack."), "{target}");
        }
        for context in [
            "kind-ml",
            "arn:aws:eks:us-east-1:1:cluster/a b",
            "say \"hi\" #1",
        ] {
            let text = starter_with(
                "kubeconfig",
                &StarterValues {
                    name: None,
                    context: Some(context),
                },
            )
            .unwrap_or_else(|e| panic!("{e}"));
            let stack = parse("howdah.yaml", &text).unwrap_or_else(|e| panic!("{e}"));
            let Target::Kubeconfig(k) = stack.target else {
                panic!("not kubeconfig")
            };
            assert_eq!(k.context.as_deref(), Some(context));
        }
        let empty = starter_with(
            "kubeconfig",
            &StarterValues {
                name: None,
                context: Some(" "),
            },
        );
        assert!(matches!(empty, Err(StarterError::Invalid(_))), "{empty:?}");
    }
}
