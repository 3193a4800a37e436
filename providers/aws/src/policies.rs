//! The IAM policy documents howdah writes. They are shown in full in the
//! plan, so a reviewer sees exactly what is trusted and what is granted.

use serde_json::{json, Value};

/// Trust for an AWS service (eks.amazonaws.com, ec2.amazonaws.com).
pub fn service_trust(service: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": service},
            "Action": "sts:AssumeRole"
        }]
    })
}

/// IRSA trust: only tokens from the cluster's OIDC issuer, meant for STS,
/// for exactly these service accounts (`system:serviceaccount:<ns>:<name>`).
pub fn irsa_trust(provider_arn: &str, issuer_host_path: &str, subjects: &[String]) -> Value {
    let subject: Value = if subjects.len() == 1 {
        json!(subjects[0])
    } else {
        json!(subjects)
    };
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {
                    format!("{issuer_host_path}:aud"): "sts.amazonaws.com",
                    format!("{issuer_host_path}:sub"): subject
                }
            }
        }]
    })
}

/// What pachd and its workers may do: list and locate this one bucket,
/// and read, write and delete objects in it. Nothing on any other bucket.
pub fn bucket_access(partition: &str, bucket: &str) -> Value {
    let bucket_arn = format!("arn:{partition}:s3:::{bucket}");
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Bucket",
                "Effect": "Allow",
                "Action": ["s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads"],
                "Resource": bucket_arn
            },
            {
                "Sid": "Objects",
                "Effect": "Allow",
                "Action": [
                    "s3:GetObject",
                    "s3:PutObject",
                    "s3:DeleteObject",
                    "s3:AbortMultipartUpload",
                    "s3:ListMultipartUploadParts"
                ],
                "Resource": format!("{bucket_arn}/*")
            }
        ]
    })
}

/// Whether two policy documents say the same, however AWS re-serialized
/// them (key order, a one-element list written as a string).
pub fn same(a: &Value, b: &Value) -> bool {
    normalize(a) == normalize(b)
}

fn normalize(v: &Value) -> Value {
    match v {
        Value::Array(items) if items.len() == 1 => normalize(&items[0]),
        Value::Array(items) => {
            let mut n: Vec<Value> = items.iter().map(normalize).collect();
            n.sort_by_key(|x| x.to_string());
            Value::Array(n)
        }
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), normalize(v))).collect())
        }
        other => other.clone(),
    }
}

/// IAM returns policy documents URL-encoded.
pub fn decode(document: &str) -> Option<Value> {
    let decoded = percent_decode(document);
    serde_json::from_str(&decoded)
        .ok()
        .or_else(|| serde_json::from_str(document).ok())
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 3;
                }
                Err(_) => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_policy_names_only_its_bucket() {
        let p = bucket_access("aws", "data-1");
        let text = p.to_string();
        assert!(text.contains("arn:aws:s3:::data-1\""));
        assert!(text.contains("arn:aws:s3:::data-1/*"));
        assert!(!text.contains("\"*\""), "no wildcard resource: {text}");
    }

    #[test]
    fn irsa_trust_is_limited_to_the_given_service_accounts() {
        let subs = vec![
            "system:serviceaccount:pachyderm:pachyderm".to_string(),
            "system:serviceaccount:pachyderm:pachyderm-worker".to_string(),
        ];
        let t = irsa_trust(
            "arn:aws:iam::1:oidc-provider/oidc.eks/id/X",
            "oidc.eks/id/X",
            &subs,
        );
        let cond = &t["Statement"][0]["Condition"]["StringEquals"];
        assert_eq!(cond["oidc.eks/id/X:aud"], "sts.amazonaws.com");
        assert_eq!(cond["oidc.eks/id/X:sub"], json!(subs));
    }

    #[test]
    fn documents_compare_by_meaning() {
        let a = json!({"Statement": [{"Action": ["sts:AssumeRole"], "Effect": "Allow"}]});
        let b = json!({"Statement": {"Effect": "Allow", "Action": "sts:AssumeRole"}});
        assert!(same(&a, &b));
        assert!(!same(&a, &service_trust("eks.amazonaws.com")));
    }

    #[test]
    fn url_encoded_documents_decode() {
        let doc = "%7B%22Version%22%3A%222012-10-17%22%7D";
        assert_eq!(decode(doc).unwrap(), json!({"Version": "2012-10-17"}));
        assert_eq!(decode("{\"a\":1}").unwrap(), json!({"a": 1}));
    }
}
