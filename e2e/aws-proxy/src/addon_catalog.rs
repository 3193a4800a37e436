//! The add-ons and versions the proxy offers (DescribeAddonVersions), a
//! small fixed stand-in for EKS's catalog.

use serde_json::{json, Value};

/// One add-on of the catalog.
#[derive(Debug)]
pub struct CatalogAddon {
    pub name: &'static str,
    /// EKS's add-on `type` (storage, networking, ...).
    pub kind: &'static str,
    /// Newest first; the newest is the default for every Kubernetes version.
    pub versions: &'static [&'static str],
}

impl CatalogAddon {
    pub fn default_version(&self) -> &'static str {
        self.versions[0]
    }

    pub fn offers(&self, version: &str) -> bool {
        self.versions.contains(&version)
    }
}

/// Kubernetes versions every catalog version is compatible with.
pub const KUBERNETES_VERSIONS: [&str; 7] = ["1.28", "1.29", "1.30", "1.31", "1.32", "1.33", "1.34"];

pub const CATALOG: &[CatalogAddon] = &[
    CatalogAddon {
        name: "aws-ebs-csi-driver",
        kind: "storage",
        versions: &["v1.36.0-eksbuild.1", "v1.35.0-eksbuild.1"],
    },
    CatalogAddon {
        name: "vpc-cni",
        kind: "networking",
        versions: &["v1.19.0-eksbuild.1", "v1.18.5-eksbuild.1"],
    },
    CatalogAddon {
        name: "coredns",
        kind: "networking",
        versions: &["v1.11.3-eksbuild.2", "v1.11.3-eksbuild.1"],
    },
    CatalogAddon {
        name: "kube-proxy",
        kind: "networking",
        versions: &["v1.31.2-eksbuild.3", "v1.30.6-eksbuild.3"],
    },
];

pub fn find(name: &str) -> Option<&'static CatalogAddon> {
    CATALOG.iter().find(|a| a.name == name)
}

/// The DescribeAddonVersions answer, filtered like EKS filters it: by add-on
/// name and by the Kubernetes version the add-on versions must support.
pub fn describe_versions(addon_name: Option<&str>, kubernetes_version: Option<&str>) -> Value {
    let cluster_versions: Vec<&str> = KUBERNETES_VERSIONS
        .iter()
        .copied()
        .filter(|v| kubernetes_version.is_none_or(|k| k == *v))
        .collect();
    let addons: Vec<Value> = CATALOG
        .iter()
        .filter(|a| addon_name.is_none_or(|n| n == a.name))
        .filter(|_| !cluster_versions.is_empty())
        .map(|a| {
            let versions: Vec<Value> = a
                .versions
                .iter()
                .enumerate()
                .map(|(i, version)| {
                    let compatibilities: Vec<Value> = cluster_versions
                        .iter()
                        .map(|cv| {
                            json!({
                                "clusterVersion": cv,
                                "platformVersions": ["*"],
                                "defaultVersion": i == 0,
                            })
                        })
                        .collect();
                    json!({
                        "addonVersion": version,
                        "architecture": ["amd64", "arm64"],
                        "computeTypes": ["ec2"],
                        "compatibilities": compatibilities,
                        "requiresConfiguration": false,
                        "requiresIamPermissions": a.name == "aws-ebs-csi-driver",
                    })
                })
                .collect();
            json!({
                "addonName": a.name,
                "type": a.kind,
                "addonVersions": versions,
                "publisher": "eks",
                "owner": "aws",
            })
        })
        .collect();
    json!({ "addons": addons, "nextToken": null })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_version_is_the_default() {
        let v = describe_versions(Some("aws-ebs-csi-driver"), Some("1.31"));
        let versions = v["addons"][0]["addonVersions"].as_array().unwrap();
        assert_eq!(versions.len(), 2);
        assert_eq!(versions[0]["addonVersion"], "v1.36.0-eksbuild.1");
        assert_eq!(versions[0]["compatibilities"][0]["clusterVersion"], "1.31");
        assert_eq!(versions[0]["compatibilities"][0]["defaultVersion"], true);
        assert_eq!(versions[1]["compatibilities"][0]["defaultVersion"], false);
    }

    #[test]
    fn unsupported_kubernetes_versions_get_no_addons() {
        let v = describe_versions(Some("aws-ebs-csi-driver"), Some("1.19"));
        assert_eq!(v["addons"], json!([]));
        let all = describe_versions(None, None);
        assert_eq!(all["addons"].as_array().unwrap().len(), CATALOG.len());
    }
}
