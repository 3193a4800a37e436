//! The SDK clients, built once per run from the standard AWS chain (or the
//! named profile), and the one place AWS errors become `ProviderError`s.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use howdah_provider::ProviderError;
use tokio::sync::OnceCell;

/// Error codes AWS uses for "slow down": retried, never a failure.
const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "SlowDown",
    "ProvisionedThroughputExceededException",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

/// Error codes for a server that is busy or broken for a moment.
const TRANSIENT: &[&str] = &[
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "ServerException",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// Error codes meaning the credentials themselves are no good.
const BAD_CREDENTIALS: &[&str] = &[
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AuthFailure",
    "IncompleteSignature",
];

const EXPIRED_CREDENTIALS: &[&str] = &[
    "ExpiredToken",
    "ExpiredTokenException",
    "RequestExpired",
    "TokenRefreshRequired",
];

/// Every client the provider uses, on one SDK configuration.
pub struct Clients {
    pub ec2: aws_sdk_ec2::Client,
    pub eks: aws_sdk_eks::Client,
    pub iam: aws_sdk_iam::Client,
    pub s3: aws_sdk_s3::Client,
    pub sts: aws_sdk_sts::Client,
    pub tagging: aws_sdk_resourcegroupstagging::Client,
    pub sdk: SdkConfig,
}

/// Builds the clients on first use (loading the AWS configuration reads
/// files and may reach an SSO or IMDS endpoint).
pub struct Lazy {
    region: String,
    profile: Option<String>,
    cell: OnceCell<Clients>,
}

impl Lazy {
    pub fn new(region: &str, profile: Option<&str>) -> Lazy {
        Lazy {
            region: region.to_string(),
            profile: profile.map(str::to_string),
            cell: OnceCell::new(),
        }
    }

    pub async fn get(&self) -> &Clients {
        self.cell
            .get_or_init(|| async { build(&self.region, self.profile.as_deref()).await })
            .await
    }
}

/// Whether an endpoint override is in force (an emulator, a proxy): S3 then
/// uses path-style addresses, since `bucket.localhost` does not resolve.
pub fn endpoint_override() -> Option<String> {
    ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
}

async fn build(region: &str, profile: Option<&str>) -> Clients {
    // The SDK retries throttling and 5xx itself with backoff; a run of
    // many parallel steps needs more patience than its default 3 attempts.
    let retry = RetryConfig::standard()
        .with_max_attempts(8)
        .with_initial_backoff(Duration::from_millis(200))
        .with_max_backoff(Duration::from_secs(10));
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .retry_config(retry);
    if let Some(profile) = profile {
        loader = loader.profile_name(profile);
    }
    let sdk = loader.load().await;
    let s3_config = aws_sdk_s3::config::Builder::from(&sdk)
        .force_path_style(endpoint_override().is_some())
        .build();
    Clients {
        ec2: aws_sdk_ec2::Client::new(&sdk),
        eks: aws_sdk_eks::Client::new(&sdk),
        iam: aws_sdk_iam::Client::new(&sdk),
        s3: aws_sdk_s3::Client::from_conf(s3_config),
        sts: aws_sdk_sts::Client::new(&sdk),
        tagging: aws_sdk_resourcegroupstagging::Client::new(&sdk),
        sdk,
    }
}

/// How many times a create is sent at most when its answers are lost.
const CREATE_ATTEMPTS: u32 = 6;

/// How many times to look for what a create whose answer was lost may
/// have made, before sending it again: EC2 and IAM may take a moment to
/// list an object they just made.
const LOOKS: u32 = 3;

/// Config for one call of a create that is not idempotent: without the
/// SDK's retry, which would send it again blindly after a lost answer and
/// make a second object. [`create_once`] retries it instead, looking first.
pub fn ec2_no_retry() -> aws_sdk_ec2::config::Builder {
    aws_sdk_ec2::config::Builder::default().retry_config(RetryConfig::disabled())
}

/// [`ec2_no_retry`] for IAM.
pub fn iam_no_retry() -> aws_sdk_iam::config::Builder {
    aws_sdk_iam::config::Builder::default().retry_config(RetryConfig::disabled())
}

/// Sends a create the API cannot make idempotent (`send`, built with
/// [`ec2_no_retry`] or [`iam_no_retry`]), and when its answer is lost or
/// retryable — AWS may have carried it out all the same — reads by tag and
/// name (`find`) before sending it again: what it finds is what that create
/// made. Throttling is the one answer that says nothing was done, and is
/// retried at once after a pause.
pub async fn create_once<T, E, S, SF, F, FF>(
    what: &str,
    send: S,
    find: F,
) -> Result<T, ProviderError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    S: Fn() -> SF,
    SF: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    F: Fn() -> FF,
    FF: std::future::Future<Output = Result<Option<T>, ProviderError>>,
{
    let backoff = crate::eks::poll_backoff();
    let mut attempt = 0;
    loop {
        let e = match send().await {
            Ok(made) => return Ok(made),
            Err(e) => e,
        };
        let throttled = code(&e).is_some_and(|c| THROTTLING.contains(&c));
        let error = err(what, e);
        attempt += 1;
        if !error.is_retryable() || attempt >= CREATE_ATTEMPTS {
            return Err(error);
        }
        if throttled {
            tokio::time::sleep(backoff.delay(attempt)).await;
            continue;
        }
        tracing::debug!(%error, "{what}: the answer was lost; looking before trying again");
        for look in 0..LOOKS {
            if let Some(made) = find().await? {
                return Ok(made);
            }
            tokio::time::sleep(backoff.delay(look)).await;
        }
    }
}

/// The service error code of a failed call, if the service answered.
pub fn code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<&str> {
    match e {
        SdkError::ServiceError(s) => s.err().code(),
        _ => None,
    }
}

/// Whether the call failed with one of `codes`.
pub fn is<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>, codes: &[&str]) -> bool {
    code(e).is_some_and(|c| codes.contains(&c))
}

/// Whether the service said the thing is not there.
pub fn not_found<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    if let SdkError::ServiceError(s) = e {
        if s.raw().status().as_u16() == 404 {
            return true;
        }
    }
    code(e).is_some_and(|c| {
        c.ends_with("NotFound")
            || c.ends_with("NotFoundException")
            || c.starts_with("NoSuch")
            || c == "NotFound"
            || c.starts_with("Invalid") && c.ends_with(".NotFound")
    })
}

/// Turns a failed SDK call into a `ProviderError` that says what was being
/// done, what AWS said, and what to do about it.
pub fn err<E>(what: &str, e: SdkError<E, HttpResponse>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &e {
        SdkError::ServiceError(s) => {
            let inner = s.err();
            let status = s.raw().status().as_u16();
            let fallback = format!("HTTP {status}");
            let code = inner.code().unwrap_or(&fallback);
            let message = inner.message().unwrap_or("").trim().to_string();
            // An answer without an error body (a proxy, an endpoint that
            // does not serve this API) must not read as "HTTP 404: ".
            let said = match (message.is_empty(), status) {
                (false, _) => format!("{what}: {code}: {message}"),
                (true, 404) if inner.code().is_none() => format!(
                    "{what}: {code} without an AWS error: the endpoint does not serve \
                     this API (an emulator or proxy without it, or the wrong endpoint: \
                     check AWS_ENDPOINT_URL and the region)"
                ),
                (true, _) => format!("{what}: {code} without an error message"),
            };
            if THROTTLING.contains(&code)
                || TRANSIENT.contains(&code)
                || status == 429
                || status >= 500
            {
                ProviderError::retryable(said)
            } else if BAD_CREDENTIALS.contains(&code) {
                ProviderError::config(format!(
                    "{said}; the AWS credentials are not valid: check AWS_PROFILE / target.aws.profile and the access key"
                ))
            } else if EXPIRED_CREDENTIALS.contains(&code) {
                ProviderError::config(format!(
                    "{said}; the AWS credentials have expired: refresh them (for SSO: `aws sso login --profile <profile>`) and run again"
                ))
            } else if code.starts_with("AccessDenied") || code == "UnauthorizedOperation" {
                ProviderError::api(format!(
                    "{said}; the identity running howdah lacks this permission: grant it, or run as a role that has it"
                ))
            } else {
                ProviderError::api(said)
            }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            let detail = aws_smithy_types::error::display::DisplayErrorContext(&e).to_string();
            if credentials_problem(&detail) {
                tracing::debug!(%detail, "{what}");
                ProviderError::config(format!("{what}: {}", credentials_hint(&short(&detail))))
            } else {
                ProviderError::retryable(format!("{what}: {detail}"))
            }
        }
        _ => {
            let detail = aws_smithy_types::error::display::DisplayErrorContext(&e).to_string();
            tracing::debug!(%detail, "{what}");
            ProviderError::config(format!("{what}: {}", credentials_hint(&short(&detail))))
        }
    }
}

/// The SDK's first words on a failure, without the nested structure it
/// appends (`(DispatchFailure(DispatchFailure { source: ConnectorError …`),
/// which only `HOWDAH_LOG=debug` shows.
fn short(detail: &str) -> String {
    let first = detail.lines().next().unwrap_or_default();
    let first = first.split(" (DispatchFailure").next().unwrap_or(first);
    let first = first
        .trim_start_matches("dispatch failure: ")
        .trim_start_matches("other: ");
    let first = first.trim_end_matches(['.', ':', ' ']);
    // "…no credentials found in chain. Attempted:" lists the attempts on
    // the lines that follow, which the debug log keeps.
    first
        .strip_suffix("Attempted")
        .unwrap_or(first)
        .trim_end_matches(['.', ' '])
        .to_string()
}

fn credentials_problem(detail: &str) -> bool {
    let d = detail.to_ascii_lowercase();
    d.contains("credential") || d.contains("profile") || d.contains("sso")
}

/// The SDK's own words for a credentials failure, with what to do.
fn credentials_hint(detail: &str) -> String {
    let d = detail.to_ascii_lowercase();
    if d.contains("sso") && (d.contains("expired") || d.contains("token")) {
        format!(
            "{detail}; the SSO session has expired or was never started: run `aws sso login --profile <profile>` (or your SSO portal's equivalent) and try again"
        )
    } else if d.contains("profile")
        && (d.contains("not defined") || d.contains("could not find") || d.contains("not found"))
    {
        format!(
            "{detail}; the AWS profile does not exist: check target.aws.profile against ~/.aws/config, or remove it to use the default chain"
        )
    } else if d.contains("no credentials")
        || d.contains("credentials provider")
        || d.contains("credential")
    {
        format!(
            "{detail}; no AWS credentials were found: set AWS_PROFILE or target.aws.profile, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run where a role is available"
        )
    } else {
        detail.to_string()
    }
}

/// Whether a named profile is defined in the shared config or credentials
/// file (`AWS_CONFIG_FILE`, `AWS_SHARED_CREDENTIALS_FILE`, else ~/.aws/…).
/// The SDK only says "no credentials" for a profile that is not there.
pub fn profile_defined(name: &str) -> bool {
    let home = std::env::var_os("HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_default();
    let file = |var: &str, default: &str| {
        std::env::var_os(var)
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| home.join(".aws").join(default))
    };
    let config = std::fs::read_to_string(file("AWS_CONFIG_FILE", "config")).unwrap_or_default();
    let credentials = std::fs::read_to_string(file("AWS_SHARED_CREDENTIALS_FILE", "credentials"))
        .unwrap_or_default();
    let headers = |text: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| {
                l.trim()
                    .strip_prefix('[')?
                    .strip_suffix(']')
                    .map(str::trim)
                    .map(str::to_string)
            })
            .collect()
    };
    let in_config = headers(&config)
        .iter()
        .any(|h| h == &format!("profile {name}") || (name == "default" && h == "default"));
    in_config || headers(&credentials).iter().any(|h| h == name)
}

/// The partition of a region, for ARNs.
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

#[cfg(test)]
mod tests {
    use super::{credentials_hint, err, profile_defined, short};

    /// An answer with no error body (an endpoint without the API: seen as
    /// `HTTP 404: ` with nothing after it) says what it means.
    #[test]
    fn an_error_without_a_body_is_not_an_empty_message() {
        use aws_sdk_eks::operation::describe_addon::DescribeAddonError;
        use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
        use aws_smithy_runtime_api::client::result::SdkError;
        use aws_smithy_types::body::SdkBody;
        use aws_smithy_types::error::ErrorMetadata;
        let answer = |status: u16| {
            let raw = HttpResponse::new(status.try_into().expect("status"), SdkBody::empty());
            let inner = DescribeAddonError::generic(ErrorMetadata::builder().build());
            SdkError::service_error(inner, raw)
        };
        let missing = err("reading the add-on", answer(404)).to_string();
        assert!(!missing.ends_with(": "), "{missing}");
        assert!(missing.contains("does not serve this API"), "{missing}");
        let teapot = err("reading the add-on", answer(418)).to_string();
        assert_eq!(
            teapot,
            "reading the add-on: HTTP 418 without an error message"
        );
    }

    /// What the SDK's chain says with no credentials anywhere (seen here:
    /// its Display ends in the whole nested Debug structure).
    #[test]
    fn no_credentials_reads_as_one_sentence_and_what_to_do() {
        let detail = "dispatch failure: other: the credential provider was not enabled: no credentials found in chain. Attempted:\n  Environment: the credential provider was not enabled: environment variable not set\n  Ec2InstanceMetadata: IMDS disabled (DispatchFailure(DispatchFailure { source: ConnectorError { kind: Other(None) } }))";
        let text = credentials_hint(&short(detail));
        assert!(!text.contains("DispatchFailure"), "{text}");
        assert!(!text.contains("ConnectorError"), "{text}");
        assert!(!text.contains('\n'), "{text}");
        assert!(
            text.starts_with(
                "the credential provider was not enabled: no credentials found in chain"
            ),
            "{text}"
        );
        assert!(
            text.contains("no AWS credentials were found: set AWS_PROFILE"),
            "{text}"
        );
    }

    #[test]
    fn profiles_are_found_in_either_shared_file() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        let credentials = dir.path().join("credentials");
        std::fs::write(
            &config,
            "[default]\nregion = us-east-1\n[profile sso-dev]\nsso_session = x\n",
        )
        .unwrap();
        std::fs::write(&credentials, "[ci]\naws_access_key_id = A\n").unwrap();
        // SAFETY: this test alone in the crate reads these variables.
        unsafe {
            std::env::set_var("AWS_CONFIG_FILE", &config);
            std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", &credentials);
        }
        assert!(profile_defined("sso-dev"));
        assert!(profile_defined("ci"));
        assert!(profile_defined("default"));
        assert!(!profile_defined("nosuchprofile"));
        // `[sso-dev]` without the `profile ` prefix in config is not a profile.
        assert!(!profile_defined("region"));
    }
}
