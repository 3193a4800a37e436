//! AWS error responses, each in the wire shape of the protocol the service
//! speaks, so that an SDK classifies them exactly as it classifies the real
//! ones (throttling → retry, auth → no retry, and so on).

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde_json::{Map, Value};

/// The wire protocols of the services howdah calls; error bodies differ by protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// EC2's query protocol: `<Response><Errors><Error>…`.
    Ec2Query,
    /// IAM/STS query protocol: `<ErrorResponse><Error><Type>…`.
    AwsQuery,
    /// EKS: status code, `x-amzn-ErrorType` header, JSON body with `message`.
    RestJson,
    /// S3: `<Error><Code>…`.
    RestXml,
    /// Resource Groups Tagging API: JSON body with `__type`.
    AwsJson,
}

/// One AWS error, independent of its wire shape.
#[derive(Debug, Clone)]
pub struct AwsError {
    pub status: StatusCode,
    pub code: std::borrow::Cow<'static, str>,
    pub message: String,
    /// Query protocol `<Type>`: Sender (client's fault) or Receiver.
    pub sender_fault: bool,
    /// Extra top-level fields of a REST-JSON body (EKS names the resource).
    pub fields: Map<String, Value>,
}

impl AwsError {
    pub fn new(
        status: u16,
        code: impl Into<std::borrow::Cow<'static, str>>,
        message: impl Into<String>,
    ) -> AwsError {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        AwsError {
            status,
            code: code.into(),
            message: message.into(),
            sender_fault: status.is_client_error(),
            fields: Map::new(),
        }
    }

    /// Adds a field to the REST-JSON body, as EKS does with `clusterName`,
    /// `nodegroupName` and `addonName`.
    pub fn with_field(mut self, name: &str, value: &str) -> AwsError {
        self.fields
            .insert(name.to_string(), Value::String(value.to_string()));
        self
    }

    /// The response in `protocol`'s shape.
    pub fn into_response(self, protocol: Protocol) -> Response<Full<Bytes>> {
        let request_id = new_request_id();
        let (content_type, body) = match protocol {
            Protocol::Ec2Query => (
                "text/xml;charset=UTF-8",
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{}</Code><Message>{}</Message></Error></Errors><RequestID>{}</RequestID></Response>",
                    self.code,
                    xml_escape(&self.message),
                    request_id
                ),
            ),
            Protocol::AwsQuery => (
                "text/xml",
                format!(
                    "<ErrorResponse><Error><Type>{}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
                    if self.sender_fault { "Sender" } else { "Receiver" },
                    self.code,
                    xml_escape(&self.message),
                    request_id
                ),
            ),
            Protocol::RestXml => (
                "application/xml",
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message><RequestId>{}</RequestId><HostId>howdah-aws-proxy</HostId></Error>",
                    self.code,
                    xml_escape(&self.message),
                    request_id
                ),
            ),
            Protocol::RestJson => {
                let mut body = self.fields.clone();
                body.insert("message".into(), Value::String(self.message.clone()));
                ("application/json", Value::Object(body).to_string())
            }
            Protocol::AwsJson => (
                "application/x-amz-json-1.1",
                serde_json::json!({ "__type": self.code, "Message": self.message }).to_string(),
            ),
        };
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        if let Ok(id) = HeaderValue::from_str(&request_id) {
            let name = if protocol == Protocol::RestXml {
                "x-amz-request-id"
            } else {
                "x-amzn-requestid"
            };
            headers.insert(name, id);
        }
        if protocol == Protocol::RestJson {
            if let Ok(code) = HeaderValue::from_str(&self.code) {
                headers.insert("x-amzn-errortype", code);
            }
        }
        response
    }
}

/// The service's own "slow down" answer.
pub fn throttling(protocol: Protocol) -> AwsError {
    match protocol {
        Protocol::Ec2Query => AwsError::new(503, "RequestLimitExceeded", "Request limit exceeded."),
        Protocol::AwsQuery => AwsError::new(400, "Throttling", "Rate exceeded"),
        Protocol::RestJson => AwsError::new(429, "ThrottlingException", "Rate exceeded"),
        Protocol::RestXml => AwsError::new(503, "SlowDown", "Please reduce your request rate."),
        Protocol::AwsJson => AwsError::new(400, "ThrottlingException", "Rate exceeded"),
    }
}

/// The service's own transient server-side failure.
pub fn internal(protocol: Protocol) -> AwsError {
    match protocol {
        Protocol::Ec2Query => {
            AwsError::new(500, "InternalError", "An internal error has occurred.")
        }
        Protocol::AwsQuery => AwsError::new(
            503,
            "ServiceUnavailable",
            "Service is unable to handle request.",
        ),
        Protocol::RestJson => AwsError::new(500, "ServerException", "Internal server error"),
        Protocol::RestXml => AwsError::new(
            500,
            "InternalError",
            "We encountered an internal error. Please try again.",
        ),
        Protocol::AwsJson => {
            AwsError::new(500, "InternalServiceException", "Internal service error")
        }
    }
}

/// The answer to a request signed with an access key AWS does not know.
pub fn rejected_key(protocol: Protocol) -> AwsError {
    const INVALID: &str = "The security token included in the request is invalid.";
    match protocol {
        Protocol::Ec2Query => AwsError::new(
            401,
            "AuthFailure",
            "AWS was not able to validate the provided access credentials",
        ),
        Protocol::AwsQuery => AwsError::new(403, "InvalidClientTokenId", INVALID),
        Protocol::RestJson => AwsError::new(403, "UnrecognizedClientException", INVALID),
        Protocol::RestXml => AwsError::new(
            403,
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
        ),
        Protocol::AwsJson => AwsError::new(400, "UnrecognizedClientException", INVALID),
    }
}

/// The answer to a request signed with expired temporary credentials.
pub fn expired_key(protocol: Protocol) -> AwsError {
    const EXPIRED: &str = "The security token included in the request is expired";
    match protocol {
        Protocol::Ec2Query | Protocol::AwsQuery => AwsError::new(403, "ExpiredToken", EXPIRED),
        Protocol::RestJson => AwsError::new(403, "ExpiredTokenException", EXPIRED),
        Protocol::RestXml => AwsError::new(400, "ExpiredToken", "The provided token has expired."),
        Protocol::AwsJson => AwsError::new(400, "ExpiredTokenException", EXPIRED),
    }
}

/// A random id in the UUID text form, as AWS request ids look.
pub fn new_request_id() -> String {
    let n: u128 = rand::random();
    let hex = format!("{n:032x}");
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_look_like_uuids() {
        let id = new_request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
        assert_ne!(id, new_request_id());
    }

    #[test]
    fn query_errors_name_the_fault_side() {
        let throttle = throttling(Protocol::AwsQuery);
        assert!(throttle.sender_fault);
        assert!(!internal(Protocol::AwsQuery).sender_fault);
    }
}
