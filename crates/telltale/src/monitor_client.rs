//! `telltale monitor add|list|remove`: the URL monitors of a running server, through its
//! `/api/v1/monitors` (`telltale run`'s or `telltale process --listen`'s address).

use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

/// How long to wait for the API: it answers from memory and one small file write.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the server is and who asks.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// The server: `telltale run`'s or `telltale process`'s --listen address.
    #[arg(
        long,
        env = "TELLTALE_SERVER_URL",
        default_value = "http://127.0.0.1:8080",
        value_name = "URL"
    )]
    pub server: String,
    /// Admin bearer token, needed to add and remove once the server has any token
    /// configured (`server.admin_tokens_file`, TELLTALE_ADMIN_TOKENS there); any role's
    /// token reads when reading is closed.
    #[arg(long, env = "TELLTALE_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[command(flatten)]
    pub client_tls: crate::client_tls::ClientTlsArgs,
}

#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// The http:// or https:// URL to check.
    pub url: String,
    /// How often: 1m, 2m, 5m, 10m, 20m or 30m.
    #[arg(long, default_value = "5m")]
    pub every: String,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, clap::Args)]
pub struct RemoveArgs {
    /// The monitor's id (the first column of `telltale monitor list`).
    pub id: String,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
}

#[derive(Debug, Deserialize)]
struct Listed {
    monitors: Vec<View>,
}

#[derive(Debug, Deserialize)]
struct View {
    id: String,
    url: String,
    every: String,
    source: String,
    checks: usize,
    availability: Option<f64>,
    last: Option<telltale_monitor::CheckResult>,
}

fn client(args: &ServerArgs) -> anyhow::Result<(reqwest::Client, String)> {
    let base = args.server.trim_end_matches('/').to_owned();
    if !base.starts_with("http://") && !base.starts_with("https://") {
        anyhow::bail!(
            "--server {:?} must be an http:// or https:// URL, e.g. http://127.0.0.1:8080",
            args.server
        );
    }
    let builder = telltale_tls::client_builder().timeout(REQUEST_TIMEOUT);
    let client = telltale_tls::with_client_tls(
        builder,
        &args.client_tls.config(),
        "the monitor API client",
        "--tls-ca",
    )?
    .build()
    .context("building the HTTP client")?;
    Ok((client, base))
}

/// Sends `request` and returns the body of a 2xx answer; anything else is an error with
/// the server's message.
fn call(
    request: reqwest::RequestBuilder,
    token: Option<&str>,
    url: &str,
) -> anyhow::Result<Vec<u8>> {
    let request = match token {
        Some(t) => request.bearer_auth(t),
        None => request,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let response = request.send().await.map_err(|e| {
            let hint = if e.is_connect() {
                format!(
                    "cannot connect to {url}: start `telltale run` or `telltale process --listen`, \
                     or point --server (TELLTALE_SERVER_URL) at one that runs"
                )
            } else {
                format!("request to {url} failed")
            };
            anyhow::Error::new(e).context(hint)
        })?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .with_context(|| format!("reading the answer of {url}"))?;
        if !status.is_success() {
            let message = serde_json::from_slice::<ErrorBody>(&body)
                .map(|b| b.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).trim().to_owned());
            anyhow::bail!("the server refused ({status}): {message}");
        }
        Ok(body.to_vec())
    })
}

pub fn add(args: AddArgs) -> anyhow::Result<()> {
    let (client, base) = client(&args.server)?;
    let url = format!("{base}/api/v1/monitors");
    let body = serde_json::json!({ "url": args.url, "every": args.every });
    let request = client
        .post(&url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(&body)?);
    let answer = call(request, args.server.token.as_deref(), &url)?;
    let v: View = serde_json::from_slice(&answer).context("reading the added monitor")?;
    println!("added monitor {} ({} every {})", v.id, v.url, v.every);
    Ok(())
}

pub fn list(args: ListArgs) -> anyhow::Result<()> {
    let (client, base) = client(&args.server)?;
    let url = format!("{base}/api/v1/monitors");
    let answer = call(client.get(&url), args.server.token.as_deref(), &url)?;
    if args.json {
        println!("{}", String::from_utf8_lossy(&answer));
        return Ok(());
    }
    let listed: Listed = serde_json::from_slice(&answer).context("reading the monitor list")?;
    print!("{}", table(&listed.monitors));
    Ok(())
}

pub fn remove(args: RemoveArgs) -> anyhow::Result<()> {
    let (client, base) = client(&args.server)?;
    let url = format!("{base}/api/v1/monitors/{}", args.id);
    let answer = call(client.delete(&url), args.server.token.as_deref(), &url)?;
    let v: View = serde_json::from_slice(&answer).context("reading the removed monitor")?;
    println!("removed monitor {} ({} every {})", v.id, v.url, v.every);
    Ok(())
}

/// The monitors as aligned columns.
fn table(monitors: &[View]) -> String {
    let mut rows = vec![[
        "ID".to_owned(),
        "EVERY".to_owned(),
        "LAST".to_owned(),
        "MS".to_owned(),
        "AVAILABILITY".to_owned(),
        "FROM".to_owned(),
        "URL".to_owned(),
    ]];
    for m in monitors {
        let (last, ms) = match &m.last {
            None => ("-".to_owned(), "-".to_owned()),
            Some(r) => {
                let state = match (r.is_up(), r.error, r.status_code) {
                    (true, _, Some(s)) => format!("up {s}"),
                    (_, Some(e), _) => format!("down {}", e.as_str()),
                    (_, None, Some(s)) => format!("down {s}"),
                    _ => "down".to_owned(),
                };
                (state, format!("{:.0}", r.duration_ms))
            }
        };
        let availability = m.availability.map_or("-".to_owned(), |a| {
            format!("{:.1}% of {}", a * 100.0, m.checks)
        });
        rows.push([
            m.id.clone(),
            m.every.clone(),
            last,
            ms,
            availability,
            m.source.clone(),
            m.url.clone(),
        ]);
    }
    let mut widths = [0usize; 7];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i == 6 {
                    c.clone()
                } else {
                    format!("{c:<w$}")
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    if monitors.is_empty() {
        out.push_str("(no monitors: add one with `telltale monitor add URL --every 5m`)\n");
    }
    out
}
