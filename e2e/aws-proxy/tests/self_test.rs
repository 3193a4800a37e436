//! Self-tests of the proxy against a real moto. moto must be installed
//! (`e2e/aws/moto.sh install`); without it these tests fail, on purpose.

mod support;

use std::time::{Duration, Instant};

use howdah_aws_proxy::ProxyOptions;
use http::Method;
use serde_json::json;
use support::{ms, start, Aws};

/// Polls `path` until `object.status` is no longer `from`; returns the new
/// status (or the HTTP status when the answer is not 200) and when it changed.
async fn wait_while_status(aws: &Aws, path: &str, object: &str, from: &str) -> (String, Duration) {
    let started = Instant::now();
    loop {
        let reply = aws.eks(Method::GET, path, None).await;
        let status = if reply.status == 200 {
            reply.json()[object]["status"]
                .as_str()
                .unwrap_or("")
                .to_string()
        } else {
            reply.status.to_string()
        };
        if status != from {
            return (status, started.elapsed());
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{path} stuck in {from}"
        );
        tokio::time::sleep(ms(25)).await;
    }
}

#[tokio::test]
async fn a_cluster_is_creating_then_active() {
    let env = start(ProxyOptions {
        cluster_create: ms(2500),
        ..Default::default()
    })
    .await;
    let started = Instant::now();
    let created = env.aws.create_cluster("alpha").await;
    assert_eq!(created.status, 200, "{}", created.text());
    assert_eq!(created.json()["cluster"]["status"], "CREATING");
    let described = env.aws.describe_cluster("alpha").await;
    assert_eq!(described.json()["cluster"]["status"], "CREATING");
    assert_eq!(described.json()["cluster"]["name"], "alpha");

    let (status, _) = wait_while_status(&env.aws, "/clusters/alpha", "cluster", "CREATING").await;
    assert_eq!(status, "ACTIVE");
    assert!(
        started.elapsed() >= ms(2500),
        "ACTIVE after {:?}",
        started.elapsed()
    );

    let stats = env.proxy.stats();
    assert_eq!(stats.count("eks:CreateCluster"), 1);
    assert!(stats.count("eks:DescribeCluster") >= 2);
}

#[tokio::test]
async fn nodegroups_delete_before_their_cluster_and_both_linger_deleting() {
    let env = start(ProxyOptions {
        nodegroup_create: ms(1000),
        nodegroup_delete: ms(2500),
        cluster_delete: ms(2500),
        ..Default::default()
    })
    .await;
    let aws = &env.aws;
    assert_eq!(aws.create_cluster("beta").await.status, 200);
    let ng = aws.create_nodegroup("beta", "workers").await;
    assert_eq!(ng.status, 200, "{}", ng.text());
    assert_eq!(ng.json()["nodegroup"]["status"], "CREATING");

    // Real EKS refuses to delete a cluster that still has nodegroups.
    let refused = aws.eks(Method::DELETE, "/clusters/beta", None).await;
    assert_eq!(refused.status, 409);
    assert_eq!(refused.error_type(), "ResourceInUseException");
    assert_eq!(refused.json()["message"], "Cluster has nodegroups attached");

    let path = "/clusters/beta/node-groups/workers";
    let (status, _) = wait_while_status(aws, path, "nodegroup", "CREATING").await;
    assert_eq!(status, "ACTIVE");

    let deleted = aws.eks(Method::DELETE, path, None).await;
    assert_eq!(deleted.status, 200);
    assert_eq!(deleted.json()["nodegroup"]["status"], "DELETING");
    let described = aws.eks(Method::GET, path, None).await;
    assert_eq!(described.status, 200);
    assert_eq!(described.json()["nodegroup"]["status"], "DELETING");
    assert_eq!(described.json()["nodegroup"]["nodegroupName"], "workers");
    let listed = aws
        .eks(Method::GET, "/clusters/beta/node-groups", None)
        .await;
    assert_eq!(listed.json()["nodegroups"], json!(["workers"]));
    // A DELETING nodegroup still blocks the cluster's delete.
    let refused = aws.eks(Method::DELETE, "/clusters/beta", None).await;
    assert_eq!(refused.status, 409);

    let (status, _) = wait_while_status(aws, path, "nodegroup", "DELETING").await;
    assert_eq!(status, "404");
    let gone = aws.eks(Method::GET, path, None).await;
    assert_eq!(gone.error_type(), "ResourceNotFoundException");
    let listed = aws
        .eks(Method::GET, "/clusters/beta/node-groups", None)
        .await;
    assert_eq!(listed.json()["nodegroups"], json!([]));

    let deleted = aws.eks(Method::DELETE, "/clusters/beta", None).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    assert_eq!(deleted.json()["cluster"]["status"], "DELETING");
    assert_eq!(
        aws.describe_cluster("beta").await.json()["cluster"]["status"],
        "DELETING"
    );
    let clusters = aws.eks(Method::GET, "/clusters", None).await;
    assert_eq!(clusters.json()["clusters"], json!(["beta"]));
    let on_deleting = aws.create_nodegroup("beta", "late").await;
    assert_eq!(on_deleting.status, 409);
    assert_eq!(on_deleting.error_type(), "ResourceInUseException");

    let (status, _) = wait_while_status(aws, "/clusters/beta", "cluster", "DELETING").await;
    assert_eq!(status, "404");
    let gone = aws.describe_cluster("beta").await;
    assert_eq!(gone.error_type(), "ResourceNotFoundException");
    assert_eq!(gone.json()["message"], "No cluster found for name: beta.");
}

#[tokio::test]
async fn addons_follow_the_eks_contract() {
    let env = start(ProxyOptions {
        cluster_create: ms(1500),
        cluster_delete: ms(1500),
        addon_create: ms(2000),
        addon_delete: ms(2000),
        ..Default::default()
    })
    .await;
    let aws = &env.aws;
    let ebs = json!({
        "addonName": "aws-ebs-csi-driver",
        "serviceAccountRoleArn": "arn:aws:iam::123456789012:role/ebs-csi",
        "resolveConflicts": "OVERWRITE",
        "tags": { "owner": "howdah" },
    });

    let no_cluster = aws
        .eks(Method::POST, "/clusters/ghost/addons", Some(ebs.clone()))
        .await;
    assert_eq!(no_cluster.status, 404);
    assert_eq!(no_cluster.error_type(), "ResourceNotFoundException");
    assert_eq!(
        no_cluster.json()["message"],
        "No cluster found for name: ghost."
    );

    assert_eq!(aws.create_cluster("gamma").await.status, 200);
    let too_early = aws
        .eks(Method::POST, "/clusters/gamma/addons", Some(ebs.clone()))
        .await;
    assert_eq!(too_early.status, 409, "{}", too_early.text());
    assert_eq!(too_early.error_type(), "ResourceInUseException");
    wait_while_status(aws, "/clusters/gamma", "cluster", "CREATING").await;

    let versions = aws
        .eks(
            Method::GET,
            "/addons/supported-versions?addonName=aws-ebs-csi-driver&kubernetesVersion=1.31",
            None,
        )
        .await;
    assert_eq!(versions.status, 200);
    let listed = &versions.json()["addons"][0];
    assert_eq!(listed["addonName"], "aws-ebs-csi-driver");
    let default = listed["addonVersions"][0].clone();
    assert_eq!(default["compatibilities"][0]["defaultVersion"], true);

    let created = aws
        .eks(Method::POST, "/clusters/gamma/addons", Some(ebs.clone()))
        .await;
    assert_eq!(created.status, 200, "{}", created.text());
    let addon = created.json()["addon"].clone();
    assert_eq!(addon["status"], "CREATING");
    assert_eq!(addon["clusterName"], "gamma");
    assert_eq!(addon["addonVersion"], default["addonVersion"]);
    assert_eq!(
        addon["serviceAccountRoleArn"],
        "arn:aws:iam::123456789012:role/ebs-csi"
    );
    assert_eq!(addon["tags"], json!({ "owner": "howdah" }));
    assert_eq!(addon["health"], json!({ "issues": [] }));
    let arn = addon["addonArn"].as_str().unwrap();
    assert!(
        arn.starts_with("arn:aws:eks:us-east-1:123456789012:addon/gamma/aws-ebs-csi-driver/"),
        "{arn}"
    );

    let again = aws
        .eks(Method::POST, "/clusters/gamma/addons", Some(ebs.clone()))
        .await;
    assert_eq!(again.status, 409);
    assert_eq!(again.error_type(), "ResourceInUseException");

    let bad_version = aws
        .eks(
            Method::POST,
            "/clusters/gamma/addons",
            Some(json!({ "addonName": "vpc-cni", "addonVersion": "v0.0.1" })),
        )
        .await;
    assert_eq!(bad_version.status, 400);
    assert_eq!(bad_version.error_type(), "InvalidParameterException");

    let path = "/clusters/gamma/addons/aws-ebs-csi-driver";
    assert_eq!(
        aws.eks(Method::GET, path, None).await.json()["addon"]["status"],
        "CREATING"
    );
    let (status, waited) = wait_while_status(aws, path, "addon", "CREATING").await;
    assert_eq!(status, "ACTIVE");
    assert!(waited >= ms(500), "{waited:?}");
    let list = aws.eks(Method::GET, "/clusters/gamma/addons", None).await;
    assert_eq!(list.json()["addons"], json!(["aws-ebs-csi-driver"]));

    let update = aws
        .eks(
            Method::POST,
            &format!("{path}/update"),
            Some(json!({ "addonVersion": "v1.35.0-eksbuild.1", "resolveConflicts": "PRESERVE" })),
        )
        .await;
    assert_eq!(update.status, 200, "{}", update.text());
    assert_eq!(update.json()["update"]["type"], "AddonUpdate");
    assert_eq!(update.json()["update"]["status"], "InProgress");
    let updating = aws.eks(Method::GET, path, None).await.json();
    assert_eq!(updating["addon"]["status"], "UPDATING");
    assert_eq!(updating["addon"]["addonVersion"], "v1.35.0-eksbuild.1");
    let busy = aws
        .eks(Method::POST, &format!("{path}/update"), Some(json!({})))
        .await;
    assert_eq!(busy.status, 409);
    let (status, _) = wait_while_status(aws, path, "addon", "UPDATING").await;
    assert_eq!(status, "ACTIVE");

    let deleted = aws
        .eks(Method::DELETE, &format!("{path}?preserve=false"), None)
        .await;
    assert_eq!(deleted.status, 200);
    assert_eq!(deleted.json()["addon"]["status"], "DELETING");
    let (status, _) = wait_while_status(aws, path, "addon", "DELETING").await;
    assert_eq!(status, "404");
    let missing = aws.eks(Method::GET, path, None).await;
    assert_eq!(missing.error_type(), "ResourceNotFoundException");
    assert_eq!(
        missing.json()["message"],
        "No addon: aws-ebs-csi-driver found in cluster: gamma."
    );

    // Deleting the cluster takes its add-ons with it.
    let vpc_cni = json!({ "addonName": "vpc-cni" });
    assert_eq!(
        aws.eks(Method::POST, "/clusters/gamma/addons", Some(vpc_cni))
            .await
            .status,
        200
    );
    assert_eq!(
        aws.eks(Method::DELETE, "/clusters/gamma", None)
            .await
            .status,
        200
    );
    let list = aws.eks(Method::GET, "/clusters/gamma/addons", None).await;
    assert_eq!(list.json()["addons"], json!([]));
    wait_while_status(aws, "/clusters/gamma", "cluster", "DELETING").await;
    let gone = aws
        .eks(Method::GET, "/clusters/gamma/addons/vpc-cni", None)
        .await;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.json()["message"], "No cluster found for name: gamma.");
}

#[tokio::test]
async fn throttling_and_errors_use_each_protocols_shape() {
    let env = start(ProxyOptions {
        throttle_percent: 100,
        ..Default::default()
    })
    .await;
    let aws = &env.aws;

    let ec2 = aws
        .query("ec2", "Action=DescribeVpcs&Version=2016-11-15")
        .await;
    assert_eq!(ec2.status, 503);
    assert!(ec2.text().contains("<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message>"), "{}", ec2.text());
    assert!(ec2.text().contains("<RequestID>"));

    for service in ["iam", "sts"] {
        let reply = aws
            .query(service, "Action=GetUser&Version=2010-05-08")
            .await;
        assert_eq!(reply.status, 400);
        assert!(
            reply.text().starts_with("<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>"),
            "{}",
            reply.text()
        );
    }

    let eks = aws.describe_cluster("any").await;
    assert_eq!(eks.status, 429);
    assert_eq!(eks.error_type(), "ThrottlingException");
    assert_eq!(eks.json()["message"], "Rate exceeded");

    let s3 = aws.s3(Method::PUT, "/bucket", "").await;
    assert_eq!(s3.status, 503);
    assert!(s3.text().contains(
        "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message>"
    ));

    let tagging = aws.tagging("GetResources", "{}").await;
    assert_eq!(tagging.status, 400);
    assert_eq!(
        tagging.json(),
        json!({ "__type": "ThrottlingException", "Message": "Rate exceeded" })
    );

    // Never on the proxy's or moto's own endpoints.
    assert_eq!(
        aws.plain(Method::GET, "/_proxy/stats", "").await.status,
        200
    );
    assert_eq!(aws.plain(Method::GET, "/moto-api/", "").await.status, 200);

    env.proxy.set_faults(0, 100);
    let ec2 = aws
        .query("ec2", "Action=DescribeVpcs&Version=2016-11-15")
        .await;
    assert_eq!(ec2.status, 500);
    assert!(ec2.text().contains("<Code>InternalError</Code>"));
    let eks = aws.describe_cluster("any").await;
    assert_eq!(eks.status, 500);
    assert_eq!(eks.error_type(), "ServerException");
    let sts = aws
        .query("sts", "Action=GetCallerIdentity&Version=2011-06-15")
        .await;
    assert_eq!(sts.status, 503);
    assert!(sts
        .text()
        .contains("<Type>Receiver</Type><Code>ServiceUnavailable</Code>"));
    let s3 = aws.s3(Method::GET, "/", "").await;
    assert_eq!(s3.status, 500);
    assert!(s3.text().contains("<Code>InternalError</Code>"));

    env.proxy.set_faults(0, 0);
    let ec2 = aws
        .query("ec2", "Action=DescribeVpcs&Version=2016-11-15")
        .await;
    assert_eq!(ec2.status, 200, "{}", ec2.text());

    let stats = env.proxy.stats();
    assert_eq!(stats.throttled, 6);
    assert_eq!(stats.errors, 4);
    assert_eq!(stats.count("ec2:DescribeVpcs"), 3);
    assert_eq!(stats.count("tagging:GetResources"), 1);
}

#[tokio::test]
async fn the_same_seed_fails_the_same_calls() {
    let env = start(ProxyOptions::default()).await;
    let run = |seed: u64| {
        let upstream = env.moto.url().to_string();
        async move {
            let proxy = howdah_aws_proxy::Proxy::start(ProxyOptions {
                upstream,
                throttle_percent: 30,
                error_percent: 20,
                seed,
                ..Default::default()
            })
            .await
            .unwrap();
            let aws = Aws::new(&proxy.url());
            let mut statuses = Vec::new();
            for _ in 0..40 {
                statuses.push(aws.tagging("GetResources", "{}").await.status);
            }
            (statuses, proxy.stats())
        }
    };
    let (first, stats) = run(42).await;
    let (second, _) = run(42).await;
    let (other, _) = run(43).await;
    assert_eq!(first, second);
    assert_ne!(first, other);
    assert!(stats.throttled > 0 && stats.errors > 0, "{stats:?}");
    assert_eq!(
        first.iter().filter(|s| **s == 200).count() as u64,
        40 - stats.throttled - stats.errors
    );
}

#[tokio::test]
async fn rejected_and_expired_access_keys_fail_like_aws() {
    let env = start(ProxyOptions {
        reject_access_keys: vec!["AKIDREVOKED".into()],
        expired_access_keys: vec!["ASIAEXPIRED".into()],
        ..Default::default()
    })
    .await;
    let revoked = env.aws.with_key("AKIDREVOKED");
    let sts = revoked
        .query("sts", "Action=GetCallerIdentity&Version=2011-06-15")
        .await;
    assert_eq!(sts.status, 403);
    assert!(sts.text().contains("<Code>InvalidClientTokenId</Code><Message>The security token included in the request is invalid.</Message>"));
    let ec2 = revoked
        .query("ec2", "Action=DescribeVpcs&Version=2016-11-15")
        .await;
    assert_eq!(ec2.status, 401);
    assert!(ec2.text().contains("<Code>AuthFailure</Code>"));
    let s3 = revoked.s3(Method::GET, "/", "").await;
    assert_eq!(s3.status, 403);
    assert!(s3.text().contains("<Code>InvalidAccessKeyId</Code>"));
    let eks = revoked.eks(Method::GET, "/clusters", None).await;
    assert_eq!(eks.status, 403);
    assert_eq!(eks.error_type(), "UnrecognizedClientException");

    let expired = env.aws.with_key("ASIAEXPIRED");
    let sts = expired
        .query("sts", "Action=GetCallerIdentity&Version=2011-06-15")
        .await;
    assert_eq!(sts.status, 403);
    assert!(sts.text().contains("<Code>ExpiredToken</Code><Message>The security token included in the request is expired</Message>"));
    let eks = expired.eks(Method::GET, "/clusters", None).await;
    assert_eq!(eks.status, 403);
    assert_eq!(eks.error_type(), "ExpiredTokenException");

    let fine = env.aws.eks(Method::GET, "/clusters", None).await;
    assert_eq!(fine.status, 200);
    assert_eq!(env.proxy.stats().auth_failures, 6);
}

#[tokio::test]
async fn stats_control_endpoints_and_byte_for_byte_forwarding() {
    let env = start(ProxyOptions {
        latency: ms(150),
        ..Default::default()
    })
    .await;
    let aws = &env.aws;
    let started = Instant::now();
    let vpc = aws
        .query(
            "ec2",
            "Action=CreateVpc&Version=2016-11-15&CidrBlock=10.0.0.0%2F16",
        )
        .await;
    assert_eq!(vpc.status, 200, "{}", vpc.text());
    assert!(started.elapsed() >= ms(150), "latency not added");

    assert_eq!(aws.s3(Method::PUT, "/howdah-bucket", "").await.status, 200);
    let payload: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let put = aws
        .s3(Method::PUT, "/howdah-bucket/dir/blob.bin", payload.clone())
        .await;
    assert_eq!(put.status, 200, "{}", put.text());
    let got = aws.s3(Method::GET, "/howdah-bucket/dir/blob.bin", "").await;
    assert_eq!(got.body.as_ref(), payload.as_slice());
    let head = aws
        .s3(Method::HEAD, "/howdah-bucket/dir/blob.bin", "")
        .await;
    assert_eq!(head.header("content-length"), Some("10000"));
    assert_eq!(
        aws.s3(Method::GET, "/howdah-bucket?versions", "")
            .await
            .status,
        200
    );
    assert_eq!(
        aws.s3(Method::GET, "/howdah-bucket?list-type=2", "")
            .await
            .status,
        200
    );

    let stats = env.proxy.stats();
    assert_eq!(stats.count("ec2:CreateVpc"), 1);
    assert_eq!(stats.count("s3:CreateBucket"), 1);
    assert_eq!(stats.count("s3:PutObject"), 1);
    assert_eq!(stats.count("s3:GetObject"), 1);
    assert_eq!(stats.count("s3:HeadObject"), 1);
    assert_eq!(stats.count("s3:ListObjectVersions"), 1);
    assert_eq!(stats.count("s3:ListObjectsV2"), 1);
    assert_eq!(stats.total(), 7);

    let over_http = aws.plain(Method::GET, "/_proxy/stats", "").await.json();
    assert_eq!(over_http["calls"]["s3:PutObject"], 1);
    assert_eq!(over_http["throttled"], 0);

    let faults = aws
        .plain(
            Method::POST,
            "/_proxy/faults",
            r#"{"throttle_percent": 100, "error_percent": 0}"#,
        )
        .await;
    assert_eq!(
        faults.json(),
        json!({ "throttle_percent": 100, "error_percent": 0 })
    );
    assert_eq!(aws.s3(Method::GET, "/", "").await.status, 503);
    aws.plain(Method::POST, "/_proxy/faults", r#"{"throttle_percent": 0}"#)
        .await;

    let reset = aws.plain(Method::POST, "/_proxy/reset", "").await;
    assert_eq!(reset.status, 200, "{}", reset.text());
    assert_eq!(env.proxy.stats().total(), 0);
    // moto was reset too: the bucket is gone.
    assert_eq!(aws.s3(Method::HEAD, "/howdah-bucket", "").await.status, 404);
    assert_eq!(env.proxy.stats().count("s3:HeadBucket"), 1);
}

#[tokio::test]
async fn the_binary_prints_ready_and_serves() {
    use tokio::io::AsyncBufReadExt;

    let moto = howdah_aws_proxy::Moto::start().await.expect("moto");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_howdah-aws-proxy"))
        .args([
            "--port",
            "0",
            "--upstream",
            moto.url(),
            "--cluster-create-ms",
            "60000",
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("READY in time")
        .unwrap()
        .unwrap();
    let url = line.strip_prefix("READY ").expect("READY line").to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    let aws = Aws::new(&url);
    let created = aws.create_cluster("delta").await;
    assert_eq!(created.json()["cluster"]["status"], "CREATING");
    let stats = aws.plain(Method::GET, "/_proxy/stats", "").await.json();
    assert_eq!(stats["calls"]["eks:CreateCluster"], 1);
    child.kill().await.unwrap();
}

#[tokio::test]
async fn a_missing_moto_fails_loudly_with_the_install_hint() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_howdah-aws-proxy"))
        .arg("--start-moto")
        .env("HOWDAH_MOTO_SERVER", "/nonexistent/moto_server")
        .output()
        .await
        .expect("binary runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("e2e/aws/moto.sh install"), "{stderr}");
}

/// A scripted lost response: moto carries the call out, the caller hears
/// the service's 5xx, the first N times only; a scripted refusal answers
/// with the chosen error and carries nothing out.
#[tokio::test]
async fn scripted_faults_lose_the_answer_after_moto_did_the_work() {
    let env = start(ProxyOptions::default()).await;
    let aws = &env.aws;
    env.proxy
        .script("ec2:CreateVpc", howdah_aws_proxy::Scripted::LoseResponse, 1);
    let create = "Action=CreateVpc&Version=2016-11-15&CidrBlock=10.0.0.0%2F16";
    let lost = aws.query("ec2", create).await;
    assert_eq!(lost.status, 500, "{}", lost.text());
    assert!(
        lost.text().contains("<Code>InternalError</Code>"),
        "{}",
        lost.text()
    );
    let vpcs = aws
        .query("ec2", "Action=DescribeVpcs&Version=2016-11-15")
        .await
        .text();
    assert_eq!(
        vpcs.matches("<isDefault>false</isDefault>").count(),
        1,
        "{vpcs}"
    );
    assert_eq!(
        aws.query("ec2", create).await.status,
        200,
        "only the first time"
    );

    let refused = aws
        .plain(
            Method::POST,
            "/_proxy/script",
            r#"{"operation": "s3:CreateBucket", "times": 1, "fault": {"mode": "refuse", "status": 403, "code": "AccessDenied", "message": "Access Denied"}}"#,
        )
        .await;
    assert_eq!(refused.status, 200, "{}", refused.text());
    let create = aws.s3(Method::PUT, "/scripted-bucket", "").await;
    assert_eq!(create.status, 403);
    assert!(
        create.text().contains("<Code>AccessDenied</Code>"),
        "{}",
        create.text()
    );
    assert_eq!(
        aws.s3(Method::HEAD, "/scripted-bucket", "").await.status,
        404
    );
}

/// A call whose caller goes away before the answer (a run killed mid-call)
/// is still carried out in full, as AWS does: moto's work and the proxy's
/// own record of it stay in step.
#[tokio::test]
async fn a_call_is_carried_out_even_when_its_caller_goes_away() {
    use tokio::io::AsyncWriteExt;
    let env = start(ProxyOptions {
        latency: ms(400),
        ..Default::default()
    })
    .await;
    let form = "Action=CreateVpc&Version=2016-11-15&CidrBlock=10.9.0.0%2F16";
    let request = format!(
        "POST / HTTP/1.1\r\nhost: {}\r\nauthorization: AWS4-HMAC-SHA256 Credential=AKIDTEST/20240101/us-east-1/ec2/aws4_request, SignedHeaders=host;x-amz-date, Signature=0\r\nx-amz-date: 20240101T000000Z\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{form}",
        env.proxy.addr(),
        form.len()
    );
    let mut stream = tokio::net::TcpStream::connect(env.proxy.addr())
        .await
        .expect("connect");
    stream.write_all(request.as_bytes()).await.expect("sent");
    tokio::time::sleep(ms(50)).await;
    drop(stream); // gone before the answer
    tokio::time::sleep(ms(900)).await;
    let vpcs = env
        .aws
        .query("ec2", "Action=DescribeVpcs&Version=2016-11-15")
        .await
        .text();
    assert_eq!(
        vpcs.matches("<isDefault>false</isDefault>").count(),
        1,
        "the call was dropped with its connection: {vpcs}"
    );
}
