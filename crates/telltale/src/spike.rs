//! `telltale spike`: load spikes and incidents on demand, through the simulator's control
//! API (served by `telltale run` on its --listen address, and by
//! `telltale sim --control-listen`).

use std::time::Duration;

use anyhow::Context;
use clap::ArgGroup;
use telltale_sim::{
    ControlErrorBody, ControlStatus, IncidentRequest, IncidentStatus, SpikeRequest,
};

/// How long to wait for the control API: it answers from memory, so this only bounds a hang.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
#[command(group(ArgGroup::new("action").required(true).args(["factor", "incident", "status"])))]
pub struct SpikeArgs {
    /// The simulator's control API: the --listen address of `telltale run`, or the
    /// --control-listen address of `telltale sim`.
    #[arg(
        long,
        env = "TELLTALE_CONTROL_URL",
        default_value = "http://127.0.0.1:8080",
        value_name = "URL"
    )]
    pub control: String,
    /// Multiply the simulated event rate by this (above 0, at most 1000) for --for;
    /// replaces a spike in effect.
    #[arg(long, requires = "for_", value_name = "FACTOR")]
    pub factor: Option<f64>,
    /// Start an incident of this kind on --service for --for.
    #[arg(
        long,
        value_name = "KIND",
        requires_all = ["service", "for_"],
        value_parser = ["outage", "error_burst", "latency_regression"]
    )]
    pub incident: Option<String>,
    /// The service of --incident, e.g. checkout-api (`telltale spike --status` lists them).
    #[arg(long, requires = "incident", value_name = "NAME")]
    pub service: Option<String>,
    /// Strength of --incident: latency factor of a latency_regression (default 6),
    /// fraction of failing requests of an error_burst (default 0.25); an outage ignores it.
    #[arg(long, requires = "incident", value_name = "NUMBER")]
    pub magnitude: Option<f64>,
    /// How long the spike or incident lasts, in simulated time (the wall clock for a
    /// simulator running in real time), e.g. 60s, 5m, 1h30m.
    #[arg(long = "for", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub for_: Option<Duration>,
    /// Print the simulator's plan: rates, the spike in effect, incidents, services.
    #[arg(long, conflicts_with_all = ["for_", "service", "magnitude"])]
    pub status: bool,
    /// Print the plan as JSON (the control API's answer) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Admin bearer token, needed to change the plan once the server has any token
    /// configured (`server.admin_tokens_file`, TELLTALE_ADMIN_TOKENS there).
    #[arg(long, env = "TELLTALE_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[command(flatten)]
    pub client_tls: crate::client_tls::ClientTlsArgs,
}

pub fn run(args: SpikeArgs) -> anyhow::Result<()> {
    let base = args.control.trim_end_matches('/').to_owned();
    if !base.starts_with("http://") && !base.starts_with("https://") {
        anyhow::bail!(
            "--control {:?} must be an http:// or https:// URL, e.g. http://127.0.0.1:8080",
            args.control
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let builder = telltale_tls::client_builder().timeout(REQUEST_TIMEOUT);
    let client = telltale_tls::with_client_tls(
        builder,
        &args.client_tls.config(),
        "the control API client",
        "--tls-ca",
    )?
    .build()
    .context("building the HTTP client")?;
    let duration = || {
        args.for_
            .map(|d| humantime::format_duration(d).to_string())
            .context("--for is required")
    };
    let (path, body) = if let Some(factor) = args.factor {
        let req = SpikeRequest {
            factor,
            duration: duration()?,
        };
        ("/control/spike", Some(serde_json::to_vec(&req)?))
    } else if let Some(kind) = &args.incident {
        let req = IncidentRequest {
            service: args.service.clone().context("--service is required")?,
            kind: kind.clone(),
            duration: duration()?,
            magnitude: args.magnitude,
        };
        ("/control/incident", Some(serde_json::to_vec(&req)?))
    } else {
        ("/control", None)
    };
    let url = format!("{base}{path}");
    let mut request = match body {
        Some(body) => client
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body),
        None => client.get(&url),
    };
    if let Some(token) = &args.token {
        request = request.bearer_auth(token);
    }
    let plan = runtime.block_on(call(request, &url, &base))?;

    if args.json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
        return Ok(());
    }
    if let Some(spike) = args.factor.and(plan.spike.as_ref()) {
        println!(
            "load spike ×{} until {} ({} left)",
            spike.factor, spike.ends, spike.remaining
        );
    }
    if let (Some(kind), Some(service)) = (&args.incident, &args.service)
        && let Some(started) = newest_manual(&plan, service)
    {
        println!(
            "incident #{} started: {kind} on {service} until {} ({} left)",
            started.id, started.ends, started.remaining
        );
    }
    print!("{}", describe(&plan));
    Ok(())
}

/// Sends a control request and reads the plan it answers with, turning every failure into
/// a message that says what to do.
async fn call(
    request: reqwest::RequestBuilder,
    url: &str,
    base: &str,
) -> anyhow::Result<ControlStatus> {
    let response = request.send().await.map_err(|e| {
        let hint = if e.is_connect() {
            format!(
                "cannot connect to the simulator's control API at {base}: start `telltale run` \
                 (it serves the API on its --listen address) or `telltale sim --rate N \
                 --control-listen ADDR`, or point --control (TELLTALE_CONTROL_URL) at one \
                 that runs"
            )
        } else if e.is_timeout() {
            format!("the control API at {base} did not answer within {REQUEST_TIMEOUT:?}")
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
    if status == reqwest::StatusCode::NOT_FOUND {
        anyhow::bail!(
            "{url} answered 404: no control API there; point --control at `telltale run`'s \
             --listen address or `telltale sim --control-listen`"
        );
    }
    if !status.is_success() {
        let message = serde_json::from_slice::<ControlErrorBody>(&body)
            .map(|b| b.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(&body).trim().to_owned());
        anyhow::bail!("the control API refused the request ({status}): {message}");
    }
    serde_json::from_slice(&body).with_context(|| {
        format!("{url} answered {status} with something other than a simulator plan")
    })
}

/// The incident the control API just started: manual ids count up.
fn newest_manual<'a>(plan: &'a ControlStatus, service: &str) -> Option<&'a IncidentStatus> {
    plan.active_incidents
        .iter()
        .filter(|i| i.manual && i.service == service)
        .max_by_key(|i| i.id)
}

/// The plan as a few aligned lines for a terminal.
fn describe(plan: &ControlStatus) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let spike_factor = plan.spike.as_ref().map_or(1.0, |s| s.factor);
    let _ = writeln!(out, "simulated clock     {}", plan.now);
    let _ = writeln!(
        out,
        "rate                {:.1} events/s = {} base × {:.2} time of day × {} spike",
        plan.effective_rate, plan.base_rate, plan.diurnal_factor, spike_factor
    );
    match &plan.spike {
        Some(s) => {
            let _ = writeln!(
                out,
                "spike               ×{} until {} ({} left)",
                s.factor, s.ends, s.remaining
            );
        }
        None => {
            let _ = writeln!(out, "spike               none");
        }
    }
    let mut incidents = |title: &str, list: &[IncidentStatus]| {
        if list.is_empty() {
            let _ = writeln!(out, "{title:<20}none");
            return;
        }
        let _ = writeln!(out, "{title}");
        for i in list {
            let _ = writeln!(
                out,
                "  #{} {} on {} (magnitude {}, {}) {} .. {} ({} left)",
                i.id,
                i.kind,
                i.service,
                i.magnitude,
                if i.manual { "manual" } else { "scheduled" },
                i.started,
                i.ends,
                i.remaining
            );
        }
    };
    incidents("active incidents", &plan.active_incidents);
    incidents("upcoming incidents", &plan.upcoming_incidents);
    let _ = writeln!(out, "services            {}", plan.services.join(", "));
    out
}
