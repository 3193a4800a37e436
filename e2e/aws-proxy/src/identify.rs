//! Which AWS call a request is. The service, region and access key come from
//! the SigV4 credential scope (`Authorization` header, or `X-Amz-Credential`
//! in a presigned URL); the operation comes from the service's protocol:
//! `Action=` for the query protocols, `X-Amz-Target` for JSON, method and
//! path for EKS and S3.

use http::{HeaderMap, Method};

use crate::eks_route::EksRoute;
use crate::errors::Protocol;

/// The region moto assumes when a request names none.
const DEFAULT_REGION: &str = "us-east-1";

/// One identified AWS call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The signing name from the credential scope (`ec2`, `iam`, `sts`,
    /// `eks`, `s3`, `tagging`), or `unknown` for an unsigned request.
    pub service: String,
    pub region: String,
    pub access_key: Option<String>,
    /// The operation name of the service's API reference; `Other` when not recognised.
    pub operation: String,
    pub protocol: Protocol,
}

impl Call {
    /// `service:Operation`, the key of the call counters.
    pub fn key(&self) -> String {
        format!("{}:{}", self.service, self.operation)
    }
}

/// Identifies the call `method uri` with `headers` and `body`.
pub fn identify(
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Call {
    let scope = credential_scope(headers, query);
    let (access_key, region, service) = match scope {
        Some(s) => (Some(s.access_key), s.region, s.service),
        None => (None, DEFAULT_REGION.to_string(), "unknown".to_string()),
    };
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(|t| t.rsplit('.').next().unwrap_or(t).to_string());
    let (operation, protocol) = match service.as_str() {
        "ec2" => (query_action(query, headers, body), Protocol::Ec2Query),
        "iam" | "sts" => (query_action(query, headers, body), Protocol::AwsQuery),
        "eks" => (
            EksRoute::parse(method, path).name().to_string(),
            Protocol::RestJson,
        ),
        "s3" => (
            s3_operation(method, path, query, headers).to_string(),
            Protocol::RestXml,
        ),
        _ => match target {
            Some(op) => (op, Protocol::AwsJson),
            None => {
                let action = query_action(query, headers, body);
                if action == "Other" {
                    (action, Protocol::RestJson)
                } else {
                    (action, Protocol::AwsQuery)
                }
            }
        },
    };
    Call {
        service,
        region,
        access_key,
        operation,
        protocol,
    }
}

struct CredentialScope {
    access_key: String,
    region: String,
    service: String,
}

/// `Credential=AKID/DATE/REGION/SERVICE/aws4_request`, from the header or the query.
fn credential_scope(headers: &HeaderMap, query: &str) -> Option<CredentialScope> {
    let from_header = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|auth| {
            let start = auth.find("Credential=")? + "Credential=".len();
            let rest = &auth[start..];
            let end = rest
                .find(|c: char| c == ',' || c.is_whitespace())
                .unwrap_or(rest.len());
            Some(rest[..end].to_string())
        });
    let credential = from_header.or_else(|| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "X-Amz-Credential")
            .map(|(_, v)| v.into_owned())
    })?;
    let parts: Vec<&str> = credential.split('/').collect();
    match parts.as_slice() {
        [akid, _date, region, service, _terminator] => Some(CredentialScope {
            access_key: (*akid).to_string(),
            region: (*region).to_string(),
            service: (*service).to_string(),
        }),
        _ => None,
    }
}

/// `Action=` from the query string, else from a form-encoded body.
fn query_action(query: &str, headers: &HeaderMap, body: &[u8]) -> String {
    let find = |bytes: &[u8]| {
        form_urlencoded::parse(bytes)
            .find(|(k, _)| k == "Action")
            .map(|(_, v)| v.into_owned())
    };
    let form_body = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    find(query.as_bytes())
        .or_else(|| if form_body { find(body) } else { None })
        .unwrap_or_else(|| "Other".to_string())
}

/// Names a path-style S3 request after the S3 API reference.
fn s3_operation(method: &Method, path: &str, query: &str, headers: &HeaderMap) -> &'static str {
    let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let has = |name: &str| params.iter().any(|(k, _)| k == name);
    let trimmed = path.trim_start_matches('/');
    let (bucket, key) = match trimmed.split_once('/') {
        Some((b, k)) => (b, k),
        None => (trimmed, ""),
    };
    let m = method.as_str();
    if bucket.is_empty() {
        return if m == "GET" { "ListBuckets" } else { "Other" };
    }
    if key.is_empty() {
        let bucket_sub = |put: &'static str, get: &'static str, delete: &'static str| match m {
            "PUT" => put,
            "GET" => get,
            "DELETE" => delete,
            _ => "Other",
        };
        return if has("tagging") {
            bucket_sub(
                "PutBucketTagging",
                "GetBucketTagging",
                "DeleteBucketTagging",
            )
        } else if has("publicAccessBlock") {
            bucket_sub(
                "PutPublicAccessBlock",
                "GetPublicAccessBlock",
                "DeletePublicAccessBlock",
            )
        } else if has("encryption") {
            bucket_sub(
                "PutBucketEncryption",
                "GetBucketEncryption",
                "DeleteBucketEncryption",
            )
        } else if has("versioning") {
            bucket_sub("PutBucketVersioning", "GetBucketVersioning", "Other")
        } else if has("policy") {
            bucket_sub("PutBucketPolicy", "GetBucketPolicy", "DeleteBucketPolicy")
        } else if has("lifecycle") {
            bucket_sub(
                "PutBucketLifecycleConfiguration",
                "GetBucketLifecycleConfiguration",
                "DeleteBucketLifecycle",
            )
        } else if has("ownershipControls") {
            bucket_sub(
                "PutBucketOwnershipControls",
                "GetBucketOwnershipControls",
                "DeleteBucketOwnershipControls",
            )
        } else if has("acl") {
            bucket_sub("PutBucketAcl", "GetBucketAcl", "Other")
        } else if has("cors") {
            bucket_sub("PutBucketCors", "GetBucketCors", "DeleteBucketCors")
        } else if has("location") {
            bucket_sub("Other", "GetBucketLocation", "Other")
        } else if has("versions") {
            bucket_sub("Other", "ListObjectVersions", "Other")
        } else if has("uploads") {
            bucket_sub("Other", "ListMultipartUploads", "Other")
        } else if has("delete") && m == "POST" {
            "DeleteObjects"
        } else {
            match m {
                "PUT" => "CreateBucket",
                "HEAD" => "HeadBucket",
                "DELETE" => "DeleteBucket",
                "GET" if params.iter().any(|(k, v)| k == "list-type" && v == "2") => {
                    "ListObjectsV2"
                }
                "GET" => "ListObjects",
                _ => "Other",
            }
        };
    }
    let upload = has("uploadId");
    match m {
        "PUT" if upload && has("partNumber") => {
            if headers.contains_key("x-amz-copy-source") {
                "UploadPartCopy"
            } else {
                "UploadPart"
            }
        }
        "PUT" if has("tagging") => "PutObjectTagging",
        "PUT" if headers.contains_key("x-amz-copy-source") => "CopyObject",
        "PUT" => "PutObject",
        "GET" if upload => "ListParts",
        "GET" if has("tagging") => "GetObjectTagging",
        "GET" => "GetObject",
        "HEAD" => "HeadObject",
        "DELETE" if upload => "AbortMultipartUpload",
        "DELETE" if has("tagging") => "DeleteObjectTagging",
        "DELETE" => "DeleteObject",
        "POST" if has("uploads") => "CreateMultipartUpload",
        "POST" if upload => "CompleteMultipartUpload",
        _ => "Other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn signed(service: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/eu-west-1/{service}/aws4_request, SignedHeaders=host;x-amz-date, Signature=00"
        );
        headers.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(&auth).unwrap(),
        );
        headers
    }

    #[test]
    fn reads_service_region_and_key_from_the_credential_scope() {
        let call = identify(&Method::GET, "/clusters/c1", "", &signed("eks"), b"");
        assert_eq!(call.service, "eks");
        assert_eq!(call.region, "eu-west-1");
        assert_eq!(call.access_key.as_deref(), Some("AKIDEXAMPLE"));
        assert_eq!(call.key(), "eks:DescribeCluster");
        assert_eq!(call.protocol, Protocol::RestJson);
    }

    #[test]
    fn reads_the_scope_of_a_presigned_url() {
        let query = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDP%2F20240101%2Fus-east-2%2Fs3%2Faws4_request&X-Amz-Signature=00";
        let call = identify(&Method::GET, "/b/k", query, &HeaderMap::new(), b"");
        assert_eq!(call.key(), "s3:GetObject");
        assert_eq!(call.access_key.as_deref(), Some("AKIDP"));
        assert_eq!(call.region, "us-east-2");
    }

    #[test]
    fn query_protocol_action_comes_from_the_form_body_or_query() {
        let mut headers = signed("ec2");
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
        );
        let body = b"Action=CreateVpc&Version=2016-11-15&CidrBlock=10.0.0.0%2F16";
        assert_eq!(
            identify(&Method::POST, "/", "", &headers, body).key(),
            "ec2:CreateVpc"
        );
        let sts = identify(
            &Method::GET,
            "/",
            "Action=GetCallerIdentity",
            &signed("sts"),
            b"",
        );
        assert_eq!(sts.key(), "sts:GetCallerIdentity");
        assert_eq!(sts.protocol, Protocol::AwsQuery);
    }

    #[test]
    fn json_protocol_operation_comes_from_the_target_header() {
        let mut headers = signed("tagging");
        headers.insert(
            "x-amz-target",
            HeaderValue::from_static("ResourceGroupsTaggingAPI_20170126.GetResources"),
        );
        let call = identify(&Method::POST, "/", "", &headers, b"{}");
        assert_eq!(call.key(), "tagging:GetResources");
        assert_eq!(call.protocol, Protocol::AwsJson);
    }

    #[test]
    fn names_s3_operations() {
        let h = signed("s3");
        let op = |m: Method, p: &str, q: &str| identify(&m, p, q, &h, b"").operation;
        assert_eq!(op(Method::PUT, "/b", ""), "CreateBucket");
        assert_eq!(op(Method::HEAD, "/b", ""), "HeadBucket");
        assert_eq!(op(Method::PUT, "/b/k/x.txt", ""), "PutObject");
        assert_eq!(op(Method::GET, "/b", "versions"), "ListObjectVersions");
        assert_eq!(op(Method::POST, "/b", "delete"), "DeleteObjects");
        assert_eq!(op(Method::PUT, "/b", "tagging"), "PutBucketTagging");
        assert_eq!(op(Method::GET, "/b", "tagging"), "GetBucketTagging");
        assert_eq!(
            op(Method::PUT, "/b", "publicAccessBlock"),
            "PutPublicAccessBlock"
        );
        assert_eq!(op(Method::PUT, "/b", "encryption"), "PutBucketEncryption");
        assert_eq!(op(Method::PUT, "/b", "versioning"), "PutBucketVersioning");
        assert_eq!(op(Method::DELETE, "/b", ""), "DeleteBucket");
        assert_eq!(op(Method::GET, "/b", "location"), "GetBucketLocation");
        assert_eq!(
            op(Method::GET, "/b", "list-type=2&prefix=a"),
            "ListObjectsV2"
        );
        assert_eq!(op(Method::PATCH, "/b", ""), "Other");
    }

    #[test]
    fn unsigned_requests_are_unknown() {
        let call = identify(&Method::GET, "/", "", &HeaderMap::new(), b"");
        assert_eq!(call.key(), "unknown:Other");
        assert_eq!(call.access_key, None);
    }
}
