//! The bucket URL grammar of the stack file: `s3://bucket?region=r`,
//! `gs://bucket`, `azblob://container` (Pachyderm's Go CDK URLs).

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
    if let Some(bad) = bucket
        .chars()
        .find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | '_')))
    {
        return Err((
            format!("bucket name {bucket:?} contains {bad:?}: bucket names are lower-case letters, digits, '-', '.' and '_'"),
            None,
        ));
    }
    if scheme == "s3" {
        let region = query
            .split('&')
            .find_map(|pair| pair.strip_prefix("region="))
            .unwrap_or("");
        if region.is_empty() {
            let separator = if query.is_empty() { "?" } else { "&" };
            return Err((
                format!("s3 bucket url {url:?} has no region"),
                Some(format!(
                    "add it as a query parameter: {url}{separator}region=us-east-1"
                )),
            ));
        }
    }
    Ok(())
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
    }
}
