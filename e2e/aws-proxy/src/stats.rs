//! What the proxy has seen: calls per operation and the faults it injected.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Counters since start or the last reset. Every AWS call is counted under
/// its `service:Operation` key, including calls answered with an injected
/// fault or an auth error; the proxy's own `/_proxy/*` endpoints and moto's
/// `/moto-api/*` are not counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Calls per `service:Operation`, e.g. `eks:DescribeCluster`, `ec2:CreateVpc`, `s3:PutObject`.
    pub calls: BTreeMap<String, u64>,
    /// Calls answered with the service's throttling error.
    pub throttled: u64,
    /// Calls answered with an injected 5xx.
    pub errors: u64,
    /// Calls refused because of a rejected or expired access key.
    pub auth_failures: u64,
}

impl Stats {
    /// Calls of one `service:Operation` (0 when never seen).
    pub fn count(&self, key: &str) -> u64 {
        self.calls.get(key).copied().unwrap_or(0)
    }

    /// All calls counted.
    pub fn total(&self) -> u64 {
        self.calls.values().sum()
    }

    /// Calls that change something (every operation but Describe*, List*,
    /// Get* and Head*), as (`service:Operation`, count).
    pub fn writes(&self) -> Vec<(&str, u64)> {
        self.calls
            .iter()
            .filter(|(k, n)| {
                let op = k.split(':').nth(1).unwrap_or("");
                **n > 0
                    && !["Describe", "List", "Get", "Head"]
                        .iter()
                        .any(|p| op.starts_with(p))
            })
            .map(|(k, n)| (k.as_str(), *n))
            .collect()
    }
}
