//! The control endpoint's protection: with TLS, a client CA (mutual TLS) and a bearer token
//! configured, requests without the right credentials are rejected and requests with them
//! accepted; the health service stays usable by probes without a token.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rowferry_tests::apply::{apply_binary, apply_toml};
use rowferry_tests::control::{free_port, terminate, workspace_binary};
use rowferry_tests::{Stack, unique_name};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files in `dir`.
fn certificates(dir: &Path) -> Result<()> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    std::fs::write(dir.join("ca.pem"), ca.pem())?;
    for (name, sans) in [
        (
            "server",
            vec!["127.0.0.1".to_owned(), "localhost".to_owned()],
        ),
        ("client", vec!["rowferry-operator".to_owned()]),
    ] {
        let key = KeyPair::generate()?;
        let cert = CertificateParams::new(sans)?.signed_by(&key, &ca)?;
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem())?;
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem())?;
    }
    Ok(())
}

struct Run {
    code: i32,
    output: String,
}

async fn ctl(args: &[&str]) -> Result<Run> {
    let output = tokio::process::Command::new(workspace_binary("rowferryctl")?)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await?;
    Ok(Run {
        code: output.status.code().unwrap_or(-1),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_client_certificates_and_the_token_are_all_required() -> Result<()> {
    let stack = Stack::from_env()?;
    let name = unique_name("ctlsec");
    let dir = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&dir)?;
    certificates(&dir)?;
    std::fs::write(dir.join("token"), "sesame-7f3a\n")?;
    std::fs::write(dir.join("wrong-token"), "sesame-0000\n")?;
    let port = free_port()?;
    let path = |f: &str| dir.join(f).display().to_string();
    let control = format!(
        "grpc_listen = \"127.0.0.1:{port}\"\nautostart = false\ntls_cert = \"{}\"\n\
         tls_key = \"{}\"\ntls_client_ca = \"{}\"\ntoken_file = \"{}\"",
        path("server.pem"),
        path("server.key"),
        path("ca.pem"),
        path("token")
    );
    let config = dir.join("apply.toml");
    std::fs::write(
        &config,
        apply_toml(&stack, &name, &format!("{name}\\.nothing"), "")
            .replace("grpc_listen = \"\"", &control),
    )?;
    let log = dir.join("apply.log");
    let mut apply = rowferry_tests::control::service_command(apply_binary()?)
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .kill_on_drop(true)
        .spawn()?;

    let https = format!("https://127.0.0.1:{port}");
    let http = format!("http://127.0.0.1:{port}");
    let (ca, cert, key, token, wrong) = (
        path("ca.pem"),
        path("client.pem"),
        path("client.key"),
        path("token"),
        path("wrong-token"),
    );
    let full = [
        "--addr",
        &https,
        "--ca-cert",
        &ca,
        "--cert",
        &cert,
        "--key",
        &key,
        "--token-file",
        &token,
        "status",
    ];
    // Wait for the endpoint with full credentials.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let run = ctl(&full).await?;
        if run.code == 0 {
            ensure!(run.output.contains("STOPPED"), "{}", run.output);
            break;
        }
        ensure!(
            apply.try_wait()?.is_none(),
            "apply exited; see {}",
            log.display()
        );
        ensure!(
            tokio::time::Instant::now() < deadline,
            "never accepted full credentials: {}",
            run.output
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Plaintext, TLS without a client certificate, and an unknown CA are all refused.
    let plaintext = ctl(&["--addr", &http, "--token-file", &token, "status"]).await?;
    ensure!(
        plaintext.code == 3,
        "plaintext: {} {}",
        plaintext.code,
        plaintext.output
    );
    let no_client_cert = ctl(&[
        "--addr",
        &https,
        "--ca-cert",
        &ca,
        "--token-file",
        &token,
        "status",
    ])
    .await?;
    ensure!(
        no_client_cert.code != 0,
        "accepted without a client certificate: {}",
        no_client_cert.output
    );
    let untrusted = ctl(&[
        "--addr",
        &https,
        "--cert",
        &cert,
        "--key",
        &key,
        "--token-file",
        &token,
        "status",
    ])
    .await?;
    ensure!(
        untrusted.code != 0,
        "accepted a server certificate from an unknown CA: {}",
        untrusted.output
    );

    // TLS options with an http:// address would send the token in the clear: refused.
    let cleartext = ctl(&[
        "--addr",
        &http,
        "--ca-cert",
        &ca,
        "--token-file",
        &token,
        "status",
    ])
    .await?;
    ensure!(
        cleartext.code == 2 && cleartext.output.contains("https://"),
        "{} {}",
        cleartext.code,
        cleartext.output
    );

    // mTLS but no token, or the wrong one: UNAUTHENTICATED (exit 7), with what to do.
    let no_token = ctl(&[
        "--addr",
        &https,
        "--ca-cert",
        &ca,
        "--cert",
        &cert,
        "--key",
        &key,
        "status",
    ])
    .await?;
    ensure!(
        no_token.code == 7 && no_token.output.contains("needs a bearer token"),
        "{} {}",
        no_token.code,
        no_token.output
    );
    let wrong_token = ctl(&[
        "--addr",
        &https,
        "--ca-cert",
        &ca,
        "--cert",
        &cert,
        "--key",
        &key,
        "--token-file",
        &wrong,
        "status",
    ])
    .await?;
    ensure!(
        wrong_token.code == 7 && wrong_token.output.contains("token is wrong"),
        "{} {}",
        wrong_token.code,
        wrong_token.output
    );

    // Probes: the health service answers over mTLS without a token.
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(&ca)?))
        .identity(Identity::from_pem(
            std::fs::read(&cert)?,
            std::fs::read(&key)?,
        ));
    let channel = Endpoint::from_shared(https.clone())?
        .tls_config(tls)?
        .connect()
        .await
        .context("mTLS connection")?;
    let health = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: "rowferry.apply.v1.ApplyControl".into(),
        })
        .await?
        .into_inner();
    ensure!(
        health.status == tonic_health::pb::health_check_response::ServingStatus::NotServing as i32,
        "{health:?}"
    );

    terminate(&mut apply, "apply").await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
