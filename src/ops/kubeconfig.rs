//! `howdah kubeconfig`: merge a context for the stack's cluster into a
//! kubeconfig file (replacing an older one of the same name) and make it
//! current. The file is written atomically and readable only by its owner.

use std::path::{Path, PathBuf};

use howdah_provider::ProviderError;
use kube::config::Kubeconfig;

use super::{OpsError, Session};

/// Where the context went.
pub struct Written {
    pub path: PathBuf,
    pub context: String,
}

/// The file kubectl would read first.
fn default_path() -> PathBuf {
    if let Some(first) = std::env::var_os("KUBECONFIG")
        .and_then(|v| std::env::split_paths(&v).find(|p| !p.as_os_str().is_empty()))
    {
        return first;
    }
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
        .join(".kube")
        .join("config")
}

pub async fn write(session: &Session, out: Option<PathBuf>) -> Result<Written, OpsError> {
    let Some(fresh) = session.provider.kubeconfig_file().await? else {
        return Err(ProviderError::config(
            "this stack's target is already a kubeconfig context: use it directly",
        )
        .into());
    };
    let path = out.unwrap_or_else(default_path);
    let merged = merge(read(&path)?, fresh);
    let context = merged.current_context.clone().unwrap_or_default();
    save(&path, &merged)?;
    Ok(Written { path, context })
}

fn read(path: &Path) -> Result<Kubeconfig, OpsError> {
    if !path.exists() {
        return Ok(Kubeconfig::default());
    }
    Kubeconfig::read_from(path).map_err(|e| {
        ProviderError::config(format!(
            "{} is not a kubeconfig howdah can merge into ({e}); pass --out to write another file",
            path.display()
        ))
        .into()
    })
}

/// `base` with `fresh`'s cluster, user and context replacing any of the
/// same names, and `fresh`'s context current.
fn merge(mut base: Kubeconfig, fresh: Kubeconfig) -> Kubeconfig {
    for c in fresh.clusters {
        base.clusters.retain(|x| x.name != c.name);
        base.clusters.push(c);
    }
    for a in fresh.auth_infos {
        base.auth_infos.retain(|x| x.name != a.name);
        base.auth_infos.push(a);
    }
    for c in fresh.contexts {
        base.contexts.retain(|x| x.name != c.name);
        base.contexts.push(c);
    }
    base.current_context = fresh.current_context;
    if base.api_version.is_none() {
        base.api_version = Some("v1".into());
        base.kind = Some("Config".into());
    }
    base
}

fn save(path: &Path, config: &Kubeconfig) -> Result<(), OpsError> {
    let text = serde_norway::to_string(config)
        .map_err(|e| ProviderError::api(format!("cannot write the kubeconfig: {e}")))?;
    let io = |e: std::io::Error| {
        OpsError::from(ProviderError::config(format!(
            "cannot write {}: {e}",
            path.display()
        )))
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("howdah-tmp");
    std::fs::write(&tmp, text).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::config::{NamedCluster, NamedContext};

    fn config(cluster: &str, context: &str) -> Kubeconfig {
        Kubeconfig {
            clusters: vec![NamedCluster {
                name: cluster.into(),
                cluster: None,
                other: Default::default(),
            }],
            contexts: vec![NamedContext {
                name: context.into(),
                context: None,
                other: Default::default(),
            }],
            current_context: Some(context.into()),
            ..Default::default()
        }
    }

    #[test]
    fn merging_keeps_other_contexts_and_replaces_ours() {
        let mut base = config("kind", "kind");
        base.clusters.extend(config("howdah-a", "x").clusters);
        let merged = merge(base, config("howdah-a", "howdah-a"));
        let names: Vec<&str> = merged.clusters.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["kind", "howdah-a"]);
        let contexts: Vec<&str> = merged.contexts.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(contexts, ["kind", "howdah-a"]);
        assert_eq!(merged.current_context.as_deref(), Some("howdah-a"));
    }
}
