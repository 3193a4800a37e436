//! The bucket URL grammar of the stack file: `s3://bucket?region=r`,
//! `gs://bucket`, `azblob://container` (Pachyderm's Go CDK URLs).

use super::aws::s3_bucket_name;
use super::structural::did_you_mean;

/// Checks `s3://bucket?region=…`, `gs://bucket`, `azblob://container`.
pub(crate) fn check_bucket_url(url: &str) -> Result<(), (String, Option<String>)> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err((
            format!("bucket url {url:?} has no scheme: expected s3://, gs:// or azblob://"),
            Some(format!("e.g. s3://{url}?region=us-east-1")),
        ));
    };
    if !matches!(scheme, "s3" | "gs" | "azblob") {
        let help =
            did_you_mean(scheme, &["s3", "gs", "azblob"]).map(|s| format!("did you mean {s}://?"));
        return Err((
            format!(
                "unsupported bucket url scheme `{scheme}://`: expected s3://, gs:// or azblob://"
            ),
            help,
        ));
    }
    let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
    let bucket = location.split('/').next().unwrap_or("");
    if bucket.is_empty() {
        return Err((
            format!("bucket url {url:?} names no bucket"),
            Some(format!("e.g. {scheme}://my-bucket")),
        ));
    }
    if let Some(problem) = bucket_name_problem(scheme, bucket) {
        return Err((format!("bucket name {bucket:?} {problem}"), None));
    }
    let parameter = |key: &str| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
    };
    if scheme == "s3" && parameter("region").unwrap_or("").is_empty() {
        let separator = if query.is_empty() { "?" } else { "&" };
        return Err((
            format!("s3 bucket url {url:?} has no region"),
            Some(format!(
                "add it as a query parameter: {url}{separator}region=us-east-1"
            )),
        ));
    }
    if let Some(endpoint) = parameter("endpoint") {
        if let Some(problem) = endpoint_problem(endpoint) {
            return Err((
                format!("bucket url endpoint {endpoint:?} {problem}"),
                Some("e.g. endpoint=http://minio.storage:9000".into()),
            ));
        }
    }
    Ok(())
}

/// What is wrong with a bucket (or container) name under one scheme's
/// rules: the same rule whether the name is in a URL or in
/// `storage.bucket.name`.
pub(crate) fn bucket_name_problem(scheme: &str, name: &str) -> Option<String> {
    match scheme {
        "s3" => s3_bucket_name(name),
        "gs" => gcs_bucket_name(name),
        _ => blob_container_name(name),
    }
}

/// Cloud Storage: 3 to 63 characters (222 with dots, 63 between them),
/// lower-case letters, digits, '-', '_' and '.', starting and ending with
/// a letter or digit, not an IP address, not starting with "goog".
fn gcs_bucket_name(name: &str) -> Option<String> {
    let length = name.chars().count();
    let max = if name.contains('.') { 222 } else { 63 };
    if length < 3 || length > max {
        return Some(format!(
            "is {length} characters long; Cloud Storage bucket names have 3 to {max}"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')))
    {
        return Some(format!(
            "contains {bad:?}: only lower-case letters, digits, '-', '_' and '.' are allowed"
        ));
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !alnum(name.chars().next()) || !alnum(name.chars().last()) {
        return Some("must begin and end with a letter or digit".into());
    }
    if name
        .split('.')
        .any(|part| part.is_empty() || part.len() > 63)
    {
        return Some("must have 1 to 63 characters between dots".into());
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return Some("must not be an IP address".into());
    }
    if name.starts_with("goog") || name.contains("google") {
        return Some("must not begin with \"goog\" or contain \"google\"".into());
    }
    None
}

/// Azure Blob containers: 3 to 63 characters, lower-case letters, digits
/// and '-', starting with a letter or digit, no "--".
fn blob_container_name(name: &str) -> Option<String> {
    let length = name.chars().count();
    if !(3..=63).contains(&length) {
        return Some(format!(
            "is {length} characters long; Blob container names have 3 to 63"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
    {
        return Some(format!(
            "contains {bad:?}: only lower-case letters, digits and '-' are allowed"
        ));
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !alnum(name.chars().next()) || !alnum(name.chars().last()) {
        return Some("must begin and end with a letter or digit".into());
    }
    if name.contains("--") {
        return Some("must not contain two '-' in a row".into());
    }
    None
}

/// An object store endpoint: an http(s) URL with a host and nothing after
/// the port but an optional path.
fn endpoint_problem(endpoint: &str) -> Option<String> {
    if endpoint.chars().any(char::is_whitespace) {
        return Some("contains a space: it must be a URL".into());
    }
    if !endpoint.contains("://") {
        return Some("has no scheme: expected http://host:port or https://host".into());
    }
    let Ok(parsed) = url::Url::parse(endpoint) else {
        return Some("is not a URL: expected http://host:port or https://host".into());
    };
    if !matches!(parsed.scheme(), "http" | "https") {
        return Some(format!(
            "has the scheme {}://: expected http:// or https://",
            parsed.scheme()
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Some("names no host".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Some(
            "holds credentials: they belong in the credentials Secret, not the URL".into(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_urls() {
        assert!(check_bucket_url("s3://data?region=eu-west-1").is_ok());
        assert!(
            check_bucket_url("s3://data/prefix?endpoint=http://minio:9000&region=us-east-1")
                .is_ok()
        );
        assert!(check_bucket_url("gs://data").is_ok());
        assert!(check_bucket_url("azblob://container").is_ok());
        let no_region = check_bucket_url("s3://data").unwrap_err();
        assert_eq!(
            no_region.1.as_deref(),
            Some("add it as a query parameter: s3://data?region=us-east-1")
        );
        assert!(check_bucket_url("s3://?region=x").is_err());
        assert!(check_bucket_url("http://data").is_err());
        assert!(check_bucket_url("data").is_err());
        assert!(check_bucket_url("gs://Data").is_err());
        // One rule for S3 names, wherever they are written.
        let underscore = check_bucket_url("s3://my_bucket?region=us-east-1").unwrap_err();
        assert_eq!(
            underscore.0,
            s3_bucket_name("my_bucket")
                .map(|p| format!("bucket name \"my_bucket\" {p}"))
                .unwrap_or_default()
        );
        assert!(check_bucket_url("gs://my_bucket").is_ok());
        assert!(check_bucket_url("azblob://my_container").is_err());
        assert!(check_bucket_url("azblob://a--b").is_err());
        for bad in [
            "not a url",
            "minio:9000",
            "ftp://minio",
            "http://",
            "http://u:p@minio:9000",
        ] {
            let url = format!("s3://data?region=us-east-1&endpoint={bad}");
            let error = check_bucket_url(&url).unwrap_err();
            assert!(
                error.0.starts_with("bucket url endpoint"),
                "{bad}: {error:?}"
            );
        }
        assert!(check_bucket_url("s3://data?endpoint=https://s3.corp:9000/base&region=x").is_ok());
    }
}
