//! What the stack file needs to know about AWS without asking it: the
//! regions EKS is offered in and the rules for S3 bucket names. Both are
//! checked before any call, so a typo fails in milliseconds rather than at
//! the first API call of `up`.

use std::net::Ipv4Addr;

/// Regions where EKS is offered: the commercial partition, GovCloud and
/// China, as of 2026. A region launched later fails here until this list
/// grows; the message says so.
pub const AWS_REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-south-1",
    "eu-south-2",
    "eu-north-1",
    "il-central-1",
    "me-south-1",
    "me-central-1",
    "mx-central-1",
    "sa-east-1",
    "us-gov-east-1",
    "us-gov-west-1",
    "cn-north-1",
    "cn-northwest-1",
];

/// What is wrong with an S3 bucket name (general purpose buckets), or
/// `None` when S3 would accept it.
pub(crate) fn s3_bucket_name(name: &str) -> Option<String> {
    let length = name.chars().count();
    if !(3..=63).contains(&length) {
        return Some(format!(
            "is {length} characters long; S3 bucket names have 3 to 63"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-'))
    {
        let hint = if bad.is_ascii_uppercase() {
            " (use lower case)"
        } else {
            ""
        };
        return Some(format!(
            "contains {bad:?}: only lower-case letters, digits, '.' and '-' are allowed{hint}"
        ));
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !alnum(name.chars().next()) || !alnum(name.chars().last()) {
        return Some("must begin and end with a letter or digit".into());
    }
    if name.contains("..") {
        return Some("must not contain two dots in a row".into());
    }
    if name.parse::<Ipv4Addr>().is_ok() {
        return Some("must not be an IP address".into());
    }
    for prefix in ["xn--", "sthree-"] {
        if name.starts_with(prefix) {
            return Some(format!("must not begin with `{prefix}` (reserved by S3)"));
        }
    }
    for suffix in ["-s3alias", "--ol-s3"] {
        if name.ends_with(suffix) {
            return Some(format!("must not end with `{suffix}` (reserved by S3)"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_the_s3_rules() {
        for good in ["ml-prod-pachyderm", "abc", "a.b-c.1", &"a".repeat(63)] {
            assert_eq!(s3_bucket_name(good), None, "{good}");
        }
        for bad in [
            "ab",
            &"a".repeat(64),
            "My-Bucket",
            "my_bucket",
            "-bucket",
            "bucket.",
            "my..bucket",
            "192.168.1.1",
            "xn--bucket",
            "sthree-bucket",
            "bucket-s3alias",
            "bucket--ol-s3",
        ] {
            assert!(s3_bucket_name(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn regions_are_unique_and_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for region in AWS_REGIONS {
            assert!(seen.insert(region), "{region} twice");
            let last = region.rsplit('-').next().unwrap_or_default();
            assert!(last.parse::<u8>().is_ok(), "{region}");
        }
    }
}
