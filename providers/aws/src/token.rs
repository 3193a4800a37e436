//! The EKS bearer token, minted in-process: a presigned STS
//! GetCallerIdentity URL that names the cluster in the signed
//! `x-k8s-aws-id` header, base64url-encoded after `k8s-aws-v1.`. The API
//! server's authenticator calls that URL to learn who is asking. No aws CLI.

use std::time::{Duration, SystemTime};

use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use base64::Engine as _;
use howdah_provider::ProviderError;
use serde_json::{json, Value};

/// The header the authenticator checks against the cluster's name.
const CLUSTER_HEADER: &str = "x-k8s-aws-id";

/// How long the presigned URL is valid (EKS accepts it for 15 minutes
/// regardless; kubectl's convention is 60 s of signature validity).
const PRESIGN_FOR: Duration = Duration::from_secs(60);

/// Tokens are refreshed a minute before EKS stops accepting them.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(14 * 60);

/// A token for `cluster`, signed with the credentials of `sdk`.
pub async fn mint(
    sdk: &aws_types::SdkConfig,
    cluster: &str,
    region: &str,
) -> Result<String, ProviderError> {
    let provider = sdk.credentials_provider().ok_or_else(|| {
        ProviderError::config(
            "no AWS credentials are configured: set AWS_PROFILE or target.aws.profile, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
        )
    })?;
    let credentials = provider.provide_credentials().await.map_err(|e| {
        ProviderError::config(format!(
            "cannot load AWS credentials for the EKS token: {}",
            aws_smithy_types::error::display::DisplayErrorContext(&e)
        ))
    })?;
    presign(credentials.into(), cluster, region, SystemTime::now())
}

/// The STS host for a region (the regional endpoint, as EKS expects), or
/// the endpoint override when one is set.
fn sts_base(region: &str) -> String {
    if let Some(url) = ["AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
    {
        return url.trim_end_matches('/').to_string();
    }
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://sts.{region}.{suffix}")
}

pub(crate) fn presign(
    identity: Identity,
    cluster: &str,
    region: &str,
    now: SystemTime,
) -> Result<String, ProviderError> {
    let base = sts_base(region);
    let host = base
        .split("://")
        .nth(1)
        .unwrap_or(&base)
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let url = format!("{base}/?Action=GetCallerIdentity&Version=2011-06-15");
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(PRESIGN_FOR);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| ProviderError::api(format!("cannot sign the EKS token: {e}")))?
        .into();
    let headers = [("host", host.as_str()), (CLUSTER_HEADER, cluster)];
    let request = SignableRequest::new(
        "GET",
        url.clone(),
        headers.into_iter(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| ProviderError::api(format!("cannot sign the EKS token: {e}")))?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| ProviderError::api(format!("cannot sign the EKS token: {e}")))?
        .into_parts();
    let (_, query) = instructions.into_parts();
    let mut signed = url;
    for (k, v) in query {
        signed.push('&');
        signed.push_str(k);
        signed.push('=');
        signed.push_str(&encode(&v));
    }
    Ok(format!(
        "k8s-aws-v1.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signed)
    ))
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The ExecCredential a kubeconfig exec plugin prints.
pub fn exec_credential(token: &str, now: chrono::DateTime<chrono::Utc>) -> Value {
    let expires = now + chrono::Duration::from_std(TOKEN_LIFETIME).unwrap_or_default();
    json!({
        "kind": "ExecCredential",
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "spec": {},
        "status": {
            "expirationTimestamp": expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "token": token,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;

    fn decode(token: &str) -> String {
        let b64 = token.strip_prefix("k8s-aws-v1.").expect("prefix");
        String::from_utf8(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(b64)
                .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn token_is_a_presigned_get_caller_identity_naming_the_cluster() {
        // SAFETY of the test: no endpoint override in the unit test process
        // unless the developer set one; then the host differs but the shape holds.
        let creds = Credentials::new("AKIDEXAMPLE", "not-a-real-secret", None, None, "test");
        let token = presign(
            creds.into(),
            "howdah-demo",
            "eu-west-1",
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        )
        .unwrap();
        let url = decode(&token);
        assert!(url.contains("Action=GetCallerIdentity"), "{url}");
        assert!(url.contains("X-Amz-Algorithm=AWS4-HMAC-SHA256"), "{url}");
        assert!(url.contains("X-Amz-Expires=60"), "{url}");
        assert!(url.contains("X-Amz-Signature="), "{url}");
        // The cluster header is signed, so the token is good for this cluster only.
        assert!(
            url.contains("X-Amz-SignedHeaders=host%3Bx-k8s-aws-id"),
            "{url}"
        );
        assert!(url.contains("%2Feu-west-1%2Fsts%2Faws4_request"), "{url}");
        // The secret key never appears in the token.
        assert!(!url.contains("not-a-real-secret"));
    }

    #[test]
    fn another_cluster_gets_another_signature() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let creds = || Credentials::new("AKIDEXAMPLE", "s", None, None, "test").into();
        let a = presign(creds(), "a", "us-east-1", t).unwrap();
        let b = presign(creds(), "b", "us-east-1", t).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn exec_credential_expires_before_eks_stops_accepting_the_token() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
            .unwrap()
            .to_utc();
        let c = exec_credential("k8s-aws-v1.x", now);
        assert_eq!(c["status"]["expirationTimestamp"], "2026-11-22T10:14:00Z");
        assert_eq!(c["apiVersion"], "client.authentication.k8s.io/v1beta1");
    }
}
