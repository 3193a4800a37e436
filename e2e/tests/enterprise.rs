//! Enterprise, TLS and the extra CA certificates on a cluster: the Secrets
//! the stack file names are checked before anything is written, and what
//! howdah generates for login is made once and kept, never printed.

use base64::Engine as _;

use crate::support::*;

const STACK: &str = "pachyderm:\n  caCertificates: {secret: corp-ca}\n  pachd:\n    \
                     tls: {secret: pachd-tls}\n  enterprise:\n    licenseSecret: lic\n";

async fn apply(env: &Env, object: serde_json::Value) {
    cluster(env).apply(&object).await.expect("applied");
}

async fn user_secret(env: &Env, name: &str, data: serde_json::Value) {
    apply(
        env,
        serde_json::json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": "pachyderm"}, "stringData": data}),
    )
    .await;
}

async fn root_token(env: &Env) -> String {
    let secret = get(env, "Secret", Some("pachyderm"), "pachyderm-auth")
        .await
        .expect("pachyderm-auth exists");
    let b64 = secret["data"]["root-token"].as_str().expect("a root token");
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64"),
    )
    .expect("text")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn enterprise_secrets_are_checked_first_then_made_once_and_never_shown() {
    let env = Env::start().await;
    let spec = env.stack("howdah.yaml", "ent", STACK);
    apply(
        &env,
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "pachyderm"}}),
    )
    .await;
    // The license under another key than pachd reads; no TLS or CA Secret.
    user_secret(
        &env,
        "lic",
        serde_json::json!({"license": "not-a-real-license"}),
    )
    .await;
    env.fake.reset_stats();
    let up = env.howdah(&["up", "-f", path(&spec)]).await;
    assert_eq!(up.code, 1, "{}", up.all());
    for wanted in [
        "`lic` (pachyderm.enterprise.licenseSecret)",
        "`enterprise-license-key`",
        "`pachd-tls` (pachyderm.pachd.tls.secret) does not exist",
        "`corp-ca` (pachyderm.caCertificates.secret) does not exist",
    ] {
        assert!(up.stderr.contains(wanted), "{wanted}: {}", up.stderr);
    }
    assert!(!up.all().contains("not-a-real-license"), "{}", up.all());
    assert_eq!(
        env.fake.stats().writes,
        0,
        "nothing written before the check"
    );

    user_secret(
        &env,
        "lic",
        serde_json::json!({"enterprise-license-key": "not-a-real-license"}),
    )
    .await;
    user_secret(
        &env,
        "pachd-tls",
        serde_json::json!({"tls.crt": "CERT", "tls.key": "KEY"}),
    )
    .await;
    user_secret(&env, "corp-ca", serde_json::json!({"ca.crt": "CA"})).await;
    let up = env.up_ok(&spec).await;
    assert!(
        up.all().contains("admin / password"),
        "the test login is called out: {}",
        up.all()
    );
    let token = root_token(&env).await;
    assert_eq!(token.len(), 32);

    // A second run keeps the generated secrets and writes nothing.
    env.fake.reset_stats();
    let again = env.up_ok(&spec).await;
    assert_eq!(env.fake.stats().writes, 0, "{}", again.all());
    assert_eq!(root_token(&env).await, token);

    // Nowhere in what howdah prints or records.
    let plan = env.howdah(&["plan", "-f", path(&spec)]).await;
    let state =
        std::fs::read_to_string(env.dir.path().join(".howdah/ent.state.json")).expect("state file");
    for (what, text) in [
        ("up", up.all()),
        ("second up", again.all()),
        ("plan", plan.all()),
        ("state", state),
    ] {
        assert!(!text.contains(&token), "the root token is in the {what}");
    }
}
