//! EKS is a REST-JSON API: the operation is named by method and path. This
//! maps the paths of the EKS API reference to operations and their
//! resource names.

use http::Method;

/// An EKS operation with the resource names taken from its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EksRoute {
    CreateCluster,
    ListClusters,
    DescribeCluster { cluster: String },
    DeleteCluster { cluster: String },
    UpdateClusterConfig { cluster: String },
    UpdateClusterVersion { cluster: String },
    ListUpdates { cluster: String },
    DescribeUpdate { cluster: String },
    CreateNodegroup { cluster: String },
    ListNodegroups { cluster: String },
    DescribeNodegroup { cluster: String, nodegroup: String },
    DeleteNodegroup { cluster: String, nodegroup: String },
    UpdateNodegroupConfig { cluster: String, nodegroup: String },
    UpdateNodegroupVersion { cluster: String, nodegroup: String },
    CreateAddon { cluster: String },
    ListAddons { cluster: String },
    DescribeAddon { cluster: String, addon: String },
    DeleteAddon { cluster: String, addon: String },
    UpdateAddon { cluster: String, addon: String },
    DescribeAddonVersions,
    TagResource,
    UntagResource,
    ListTagsForResource,
    Other,
}

impl EksRoute {
    /// Routes `method path` (path without the query string).
    pub fn parse(method: &Method, path: &str) -> EksRoute {
        let segments: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(percent_decode)
            .collect();
        let s: Vec<&str> = segments.iter().map(String::as_str).collect();
        let m = method.as_str();
        let c = |i: usize| s[i].to_string();
        match (m, s.as_slice()) {
            ("POST", ["clusters"]) => EksRoute::CreateCluster,
            ("GET", ["clusters"]) => EksRoute::ListClusters,
            ("GET", ["clusters", _]) => EksRoute::DescribeCluster { cluster: c(1) },
            ("DELETE", ["clusters", _]) => EksRoute::DeleteCluster { cluster: c(1) },
            ("POST", ["clusters", _, "update-config"]) => {
                EksRoute::UpdateClusterConfig { cluster: c(1) }
            }
            ("POST", ["clusters", _, "updates"]) => {
                EksRoute::UpdateClusterVersion { cluster: c(1) }
            }
            ("GET", ["clusters", _, "updates"]) => EksRoute::ListUpdates { cluster: c(1) },
            ("GET", ["clusters", _, "updates", _]) => EksRoute::DescribeUpdate { cluster: c(1) },
            ("POST", ["clusters", _, "node-groups"]) => EksRoute::CreateNodegroup { cluster: c(1) },
            ("GET", ["clusters", _, "node-groups"]) => EksRoute::ListNodegroups { cluster: c(1) },
            ("GET", ["clusters", _, "node-groups", _]) => EksRoute::DescribeNodegroup {
                cluster: c(1),
                nodegroup: c(3),
            },
            ("DELETE", ["clusters", _, "node-groups", _]) => EksRoute::DeleteNodegroup {
                cluster: c(1),
                nodegroup: c(3),
            },
            ("POST", ["clusters", _, "node-groups", _, "update-config"]) => {
                EksRoute::UpdateNodegroupConfig {
                    cluster: c(1),
                    nodegroup: c(3),
                }
            }
            ("POST", ["clusters", _, "node-groups", _, "update-version"]) => {
                EksRoute::UpdateNodegroupVersion {
                    cluster: c(1),
                    nodegroup: c(3),
                }
            }
            ("POST", ["clusters", _, "addons"]) => EksRoute::CreateAddon { cluster: c(1) },
            ("GET", ["clusters", _, "addons"]) => EksRoute::ListAddons { cluster: c(1) },
            ("GET", ["clusters", _, "addons", _]) => EksRoute::DescribeAddon {
                cluster: c(1),
                addon: c(3),
            },
            ("DELETE", ["clusters", _, "addons", _]) => EksRoute::DeleteAddon {
                cluster: c(1),
                addon: c(3),
            },
            ("POST", ["clusters", _, "addons", _, "update"]) => EksRoute::UpdateAddon {
                cluster: c(1),
                addon: c(3),
            },
            ("GET", ["addons", "supported-versions"]) => EksRoute::DescribeAddonVersions,
            ("POST", ["tags", ..]) => EksRoute::TagResource,
            ("DELETE", ["tags", ..]) => EksRoute::UntagResource,
            ("GET", ["tags", ..]) => EksRoute::ListTagsForResource,
            _ => EksRoute::Other,
        }
    }

    /// The operation name of the EKS API reference.
    pub fn name(&self) -> &'static str {
        match self {
            EksRoute::CreateCluster => "CreateCluster",
            EksRoute::ListClusters => "ListClusters",
            EksRoute::DescribeCluster { .. } => "DescribeCluster",
            EksRoute::DeleteCluster { .. } => "DeleteCluster",
            EksRoute::UpdateClusterConfig { .. } => "UpdateClusterConfig",
            EksRoute::UpdateClusterVersion { .. } => "UpdateClusterVersion",
            EksRoute::ListUpdates { .. } => "ListUpdates",
            EksRoute::DescribeUpdate { .. } => "DescribeUpdate",
            EksRoute::CreateNodegroup { .. } => "CreateNodegroup",
            EksRoute::ListNodegroups { .. } => "ListNodegroups",
            EksRoute::DescribeNodegroup { .. } => "DescribeNodegroup",
            EksRoute::DeleteNodegroup { .. } => "DeleteNodegroup",
            EksRoute::UpdateNodegroupConfig { .. } => "UpdateNodegroupConfig",
            EksRoute::UpdateNodegroupVersion { .. } => "UpdateNodegroupVersion",
            EksRoute::CreateAddon { .. } => "CreateAddon",
            EksRoute::ListAddons { .. } => "ListAddons",
            EksRoute::DescribeAddon { .. } => "DescribeAddon",
            EksRoute::DeleteAddon { .. } => "DeleteAddon",
            EksRoute::UpdateAddon { .. } => "UpdateAddon",
            EksRoute::DescribeAddonVersions => "DescribeAddonVersions",
            EksRoute::TagResource => "TagResource",
            EksRoute::UntagResource => "UntagResource",
            EksRoute::ListTagsForResource => "ListTagsForResource",
            EksRoute::Other => "Other",
        }
    }
}

/// Decodes `%XX` escapes in a path segment (names are ASCII; ARNs in
/// `/tags/{arn}` arrive escaped).
pub fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = &bytes[i + 1..i + 3];
            if let Some(b) = hex
                .iter()
                .all(u8::is_ascii_hexdigit)
                .then(|| std::str::from_utf8(hex).ok())
                .flatten()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_cluster_nodegroup_and_addon_paths() {
        let route = |m: Method, p: &str| EksRoute::parse(&m, p);
        assert_eq!(route(Method::POST, "/clusters"), EksRoute::CreateCluster);
        assert_eq!(
            route(Method::GET, "/clusters/c1"),
            EksRoute::DescribeCluster {
                cluster: "c1".into()
            }
        );
        assert_eq!(
            route(Method::DELETE, "/clusters/c1/node-groups/ng"),
            EksRoute::DeleteNodegroup {
                cluster: "c1".into(),
                nodegroup: "ng".into()
            }
        );
        assert_eq!(
            route(Method::POST, "/clusters/c1/node-groups/ng/update-config").name(),
            "UpdateNodegroupConfig"
        );
        assert_eq!(
            route(Method::POST, "/clusters/c1/addons/vpc-cni/update").name(),
            "UpdateAddon"
        );
        assert_eq!(
            route(Method::GET, "/addons/supported-versions"),
            EksRoute::DescribeAddonVersions
        );
        assert_eq!(
            route(
                Method::POST,
                "/tags/arn%3Aaws%3Aeks%3Aus-east-1%3A123456789012%3Acluster%2Fc1"
            ),
            EksRoute::TagResource
        );
        assert_eq!(route(Method::PUT, "/clusters/c1"), EksRoute::Other);
    }

    #[test]
    fn decodes_escapes_and_keeps_broken_ones() {
        assert_eq!(percent_decode("a%2Fb"), "a/b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
