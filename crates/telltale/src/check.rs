//! `telltale check-config`: validate both files and print what they mean.

use std::fmt::Write;

use crate::config_load::{ConfigArgs, Loaded, load};

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
}

pub fn run(args: CheckArgs) -> anyhow::Result<()> {
    let loaded = load(&args.config)?;
    print!("{}", describe(&loaded));
    // The certificate files are read as the listener would: a bad path or a key of another
    // certificate is found here, not at the first connection.
    let tls = &loaded.pipeline.server.tls;
    if telltale_tls::server_config(tls)?.is_some() {
        println!(
            "server.tls: HTTPS with {}{}",
            tls.cert_file.as_deref().unwrap_or_default(),
            tls.client_ca_file
                .as_deref()
                .map(|ca| format!(", client certificates signed by {ca} required"))
                .unwrap_or_default()
        );
    }
    // Single sign-on: the table was validated with the file; the secret file is read
    // here (never printed), the provider is only reached at start.
    let oidc = &loaded.pipeline.server.oidc;
    if oidc.is_enabled() {
        let secret = crate::sso::client_secret(oidc)?;
        println!(
            "server.oidc: single sign-on via {} as client {} ({}), admin groups {:?}, read groups {:?}",
            oidc.issuer_url,
            oidc.client_id,
            if secret.is_some() {
                "with a client secret"
            } else {
                "public client, PKCE only"
            },
            oidc.admin_groups,
            oidc.read_groups
        );
    }
    Ok(())
}

fn pct(fraction: f64) -> String {
    let p = fraction * 100.0;
    let s = format!("{p:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned() + "%"
}

/// The human description `check-config` prints.
pub fn describe(l: &Loaded) -> String {
    let mut out = String::new();
    let c = &l.catalog;
    let d = c.defaults();
    let _ = writeln!(
        out,
        "services: {} ({} services, {} teams)",
        l.catalog_source,
        c.len(),
        c.teams().len()
    );
    let _ = writeln!(
        out,
        "  {:<22} {:<12} {:>10} {:>12} {:>10} {:>8} {:>14}",
        "SERVICE", "TEAM", "SLOW >", "AVAILABILITY", "LATENCY", "BUDGET", "WINDOW"
    );
    for p in c.services() {
        let window: String = p.window.into();
        let _ = writeln!(
            out,
            "  {:<22} {:<12} {:>8}ms {:>12} {:>10} {:>8} {:>14}",
            p.name,
            p.team,
            p.latency_threshold_ms,
            pct(p.availability_objective),
            pct(p.latency_objective),
            pct(1.0 - p.availability_objective),
            window
        );
    }
    let window: String = d.window.into();
    let _ = writeln!(
        out,
        "  any other service: team {:?}, slow over {}ms, availability {}%, latency {}%, window {}",
        d.team, d.latency_threshold_ms, d.availability_objective, d.latency_objective, window
    );
    let m = c.monitor_default_policy("");
    let _ = writeln!(
        out,
        "  URL monitors: {} with [monitors.\"<url>\"]; any other: team {:?}, slow over {}ms, \
         availability {}, latency {}, at least {} events",
        c.monitors().count(),
        m.team,
        m.latency_threshold_ms,
        pct(m.availability_objective),
        pct(m.latency_objective),
        m.min_events
    );
    let _ = writeln!(out, "teams:");
    for (team, services) in c.teams() {
        let _ = writeln!(out, "  {team}: {}", services.join(", "));
    }
    let p = &l.pipeline;
    let _ = writeln!(out, "pipeline: {}", l.pipeline_source);
    let _ = writeln!(
        out,
        "  listen {} (body limit {} bytes)",
        p.server.listen, p.server.max_body_bytes
    );
    let _ = writeln!(
        out,
        "  lake {} (flush at {} rows or {}, zstd level {}, row groups of {} rows)",
        l.data_dir.display(),
        p.lake.flush_rows,
        humantime::format_duration(p.lake.flush_age),
        p.lake.zstd_level,
        p.lake.row_group_rows
    );
    let _ = writeln!(
        out,
        "  rollups every {} of event time, late events accepted for {}",
        humantime::format_duration(p.rollup.window),
        humantime::format_duration(p.rollup.allowed_lateness)
    );
    let _ = writeln!(
        out,
        "  lines: at most {} bytes, service names at most {} bytes, at most {} in the future",
        p.validation.max_line_bytes,
        p.validation.max_service_name_bytes,
        humantime::format_duration(p.validation.max_future_skew)
    );
    out
}
