//! Where a shared state lives: `s3://bucket/prefix?region=r`, in the stack
//! file (`state.url`) or on the command line (`--state`). One grammar for
//! both, checked offline.

use std::fmt;

use super::bucket_url::bucket_name_problem;

/// The schemes a state URL may have today; `gs://` and `azblob://` come
/// with their backends.
const SCHEMES: &[&str] = &["s3"];

/// A remote state location: a bucket that exists, a key prefix in it and
/// the bucket's region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateUrl {
    pub bucket: String,
    /// The key prefix without leading or trailing `/`; may be empty.
    pub prefix: String,
    pub region: String,
}

impl StateUrl {
    /// Parses and checks a state URL; the error is the problem and, where
    /// one helps, an example of what to write.
    pub fn parse(url: &str) -> Result<StateUrl, (String, Option<String>)> {
        let example = || Some("e.g. s3://my-team-state/howdah?region=us-east-1".to_string());
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err((
                format!("state url {url:?} has no scheme: expected s3://"),
                example(),
            ));
        };
        if !SCHEMES.contains(&scheme) {
            return Err((
                format!(
                    "state url scheme `{scheme}://` is not supported: howdah keeps shared state \
                     in S3 (s3://); for a file on this machine use `path`"
                ),
                example(),
            ));
        }
        let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
        if bucket.is_empty() {
            return Err((format!("state url {url:?} names no bucket"), example()));
        }
        if let Some(problem) = bucket_name_problem(scheme, bucket) {
            return Err((format!("state bucket name {bucket:?} {problem}"), None));
        }
        let prefix = prefix.trim_end_matches('/');
        if prefix.split('/').any(|part| matches!(part, "." | ".."))
            || prefix.contains("//")
            || prefix.starts_with('/')
        {
            return Err((
                format!("state url prefix {prefix:?} has an empty, `.` or `..` part"),
                Some("write the prefix as plain names joined by `/`, e.g. teams/ml".into()),
            ));
        }
        let mut region = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("region", value)) if !value.is_empty() => region = Some(value.to_string()),
                _ => {
                    return Err((
                        format!(
                            "state url parameter {pair:?} is not known: the only one is \
                             region=<the bucket's region>"
                        ),
                        Some("send S3 calls elsewhere (an emulator) with AWS_ENDPOINT_URL".into()),
                    ))
                }
            }
        }
        let Some(region) = region else {
            let separator = if query.is_empty() { "?" } else { "&" };
            return Err((
                format!("state url {url:?} has no region"),
                Some(format!(
                    "add the bucket's region as a query parameter: {url}{separator}region=us-east-1"
                )),
            ));
        };
        Ok(StateUrl {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            region,
        })
    }

    /// The key of `name` under the prefix.
    pub fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }
}

impl fmt::Display for StateUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}", self.bucket)?;
        if !self.prefix.is_empty() {
            write!(f, "/{}", self.prefix)?;
        }
        write!(f, "?region={}", self.region)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_url_names_bucket_prefix_and_region() {
        let url = StateUrl::parse("s3://team-state/ci/ml/?region=eu-west-1").unwrap();
        assert_eq!(url.bucket, "team-state");
        assert_eq!(url.prefix, "ci/ml");
        assert_eq!(url.key("demo.state.json"), "ci/ml/demo.state.json");
        assert_eq!(url.to_string(), "s3://team-state/ci/ml?region=eu-west-1");
        let bare = StateUrl::parse("s3://team-state?region=us-east-1").unwrap();
        assert_eq!(bare.key("demo.state.json"), "demo.state.json");
    }

    #[test]
    fn a_bad_state_url_says_what_is_wrong() {
        for (url, wanted) in [
            ("s3://team-state/ci", "has no region"),
            ("s3://Team_State?region=us-east-1", "bucket name"),
            ("gs://team-state?region=x", "not supported"),
            ("team-state", "no scheme"),
            ("s3://?region=us-east-1", "names no bucket"),
            ("s3://team-state/a//b?region=us-east-1", "empty"),
            ("s3://team-state/../b?region=us-east-1", "`..`"),
            ("s3://team-state?region=us-east-1&profile=x", "not known"),
        ] {
            let (message, _) = StateUrl::parse(url).unwrap_err();
            assert!(message.contains(wanted), "{url}: {message}");
        }
        let (_, help) = StateUrl::parse("s3://team-state/ci").unwrap_err();
        assert_eq!(
            help.as_deref(),
            Some(
                "add the bucket's region as a query parameter: s3://team-state/ci?region=us-east-1"
            )
        );
    }
}
