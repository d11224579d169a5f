//! The TLS listener with real rustls handshakes from a real client (reqwest, the client
//! every telltale component uses), on loopback ports of the test's own.

use std::path::Path;
use std::time::Duration;

use telltale_core::config::{ClientTlsConfig, ServerTlsConfig};
use telltale_tls::testing::{Pair, TestCa};
use telltale_tls::{Listener, client_builder, server_config, with_client_tls};

/// Serves a one-route router on a loopback port with `tls`; the base URL.
async fn serve(tls: &ServerTlsConfig) -> String {
    let config = server_config(tls).expect("server config").expect("TLS on");
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listener = Listener::new(tcp, Some(config)).unwrap();
    assert!(listener.is_tls());
    let port = axum::serve::Listener::local_addr(&listener).unwrap().port();
    let app = axum::Router::new().route("/hello", axum::routing::get(|| async { "hi" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("127.0.0.1:{port}")
}

fn server_tls(pair: &Pair, client_ca: Option<&Path>) -> ServerTlsConfig {
    ServerTlsConfig {
        cert_file: Some(pair.cert.display().to_string()),
        key_file: Some(pair.key.display().to_string()),
        client_ca_file: client_ca.map(|p| p.display().to_string()),
    }
}

/// A client trusting `ca` (besides the system roots) and presenting `identity`.
fn client(ca: Option<&Path>, identity: Option<&Pair>) -> reqwest::Client {
    let tls = ClientTlsConfig {
        ca_file: ca.map(|p| p.display().to_string()),
        cert_file: identity.map(|p| p.cert.display().to_string()),
        key_file: identity.map(|p| p.key.display().to_string()),
        insecure_skip_verify: false,
    };
    with_client_tls(
        client_builder().timeout(Duration::from_secs(5)),
        &tls,
        "the test client",
        "test.tls",
    )
    .unwrap()
    .build()
    .unwrap()
}

async fn get(client: &reqwest::Client, url: &str) -> Result<(u16, String), String> {
    let resp = client.get(url).send().await.map_err(|e| format!("{e:?}"))?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await.map_err(|e| e.to_string())?))
}

#[tokio::test]
async fn https_verified_against_the_ca_file_reaches_the_router() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("telltale test CA");
    let ca_file = ca.write_ca(&dir.path().join("ca.pem"));
    let pair = ca.issue_server(dir.path(), "server", &["localhost", "127.0.0.1"]);
    let addr = serve(&server_tls(&pair, None)).await;

    let ok = get(
        &client(Some(&ca_file), None),
        &format!("https://{addr}/hello"),
    )
    .await;
    assert_eq!(ok, Ok((200, "hi".to_owned())));

    // Verification is on: without the CA the certificate is refused.
    let refused = get(&client(None, None), &format!("https://{addr}/hello")).await;
    assert!(
        refused.is_err(),
        "an unknown CA must be refused: {refused:?}"
    );
}

#[tokio::test]
async fn plain_http_on_the_tls_port_gets_a_400_that_says_https() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("telltale test CA");
    let pair = ca.issue_server(dir.path(), "server", &["127.0.0.1"]);
    let addr = serve(&server_tls(&pair, None)).await;

    let (status, body) = get(&client(None, None), &format!("http://{addr}/hello"))
        .await
        .expect("an answer, not a hang or a reset");
    assert_eq!(status, 400);
    assert!(body.contains("HTTPS only"), "{body}");
    assert!(body.contains("https://"), "{body}");
}

#[tokio::test]
async fn a_renewed_certificate_is_served_from_the_next_connection_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (old_ca, new_ca) = (TestCa::new("old CA"), TestCa::new("new CA"));
    let old_ca_file = old_ca.write_ca(&dir.path().join("old-ca.pem"));
    let new_ca_file = new_ca.write_ca(&dir.path().join("new-ca.pem"));
    let pair = old_ca.issue_server(dir.path(), "server", &["127.0.0.1"]);
    let addr = serve(&server_tls(&pair, None)).await;
    let url = format!("https://{addr}/hello");
    assert_eq!(
        get(&client(Some(&old_ca_file), None), &url).await,
        Ok((200, "hi".to_owned()))
    );

    // Renewal writes a pair from another CA over the same files.
    new_ca.issue_server(dir.path(), "server", &["127.0.0.1"]);
    assert_eq!(
        get(&client(Some(&new_ca_file), None), &url).await,
        Ok((200, "hi".to_owned())),
        "the renewed certificate is served"
    );
    assert!(
        get(&client(Some(&old_ca_file), None), &url).await.is_err(),
        "the old certificate is no longer served"
    );
}

#[tokio::test]
async fn mutual_tls_admits_only_clients_with_a_certificate_of_the_client_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("server CA");
    let ca_file = ca.write_ca(&dir.path().join("ca.pem"));
    let clients_ca = TestCa::new("clients CA");
    let clients_ca_file = clients_ca.write_ca(&dir.path().join("clients-ca.pem"));
    let pair = ca.issue_server(dir.path(), "server", &["127.0.0.1"]);
    let addr = serve(&server_tls(&pair, Some(&clients_ca_file))).await;
    let url = format!("https://{addr}/hello");

    let with_cert = clients_ca.issue_client(dir.path(), "client", "sender-1");
    assert_eq!(
        get(&client(Some(&ca_file), Some(&with_cert)), &url).await,
        Ok((200, "hi".to_owned()))
    );
    let no_cert = get(&client(Some(&ca_file), None), &url).await;
    assert!(no_cert.is_err(), "no client certificate: {no_cert:?}");
    let stranger = TestCa::new("another CA").issue_client(dir.path(), "stranger", "sender-2");
    let wrong_ca = get(&client(Some(&ca_file), Some(&stranger)), &url).await;
    assert!(
        wrong_ca.is_err(),
        "a certificate of another CA: {wrong_ca:?}"
    );
}

#[tokio::test]
async fn a_client_that_never_finishes_its_handshake_delays_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("telltale test CA");
    let ca_file = ca.write_ca(&dir.path().join("ca.pem"));
    let pair = ca.issue_server(dir.path(), "server", &["127.0.0.1"]);
    let addr = serve(&server_tls(&pair, None)).await;

    // Connected, and silent: its handshake waits (up to the listener's handshake timeout,
    // 10 s, longer than the client's 5 s deadline below).
    let _silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let ok = get(
        &client(Some(&ca_file), None),
        &format!("https://{addr}/hello"),
    )
    .await;
    assert_eq!(ok, Ok((200, "hi".to_owned())));
}
