//! Reading the config files from disk (the core only parses text).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use telltale_core::auth::Tokens;
use telltale_core::{PipelineConfig, ServiceCatalog};

/// Where the config files are; shared by every subcommand that reads them.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArgs {
    /// Pipeline settings (ports, lake flush policy, rollup window, limits).
    #[arg(long, env = "TELLTALE_CONFIG", default_value = "config/telltale.toml")]
    pub config: PathBuf,
    /// Service catalogue (teams, thresholds, objectives).
    #[arg(
        long,
        env = "TELLTALE_SERVICES",
        default_value = "config/services.toml"
    )]
    pub services: PathBuf,
    /// Root of the Parquet lake (overrides `lake.data_dir`): a local directory.
    #[arg(long, env = "TELLTALE_DATA_DIR", value_parser = data_dir)]
    pub data_dir: Option<PathBuf>,
}

/// `--data-dir`: a local directory; a URL such as `s3://bucket/prefix` is refused with the
/// reason instead of becoming a directory named `s3:`.
pub fn data_dir(value: &str) -> Result<PathBuf, String> {
    telltale_core::config::local_data_dir(value).map(|()| PathBuf::from(value))
}

/// Both config files, validated, with the data dir resolved.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub pipeline: PipelineConfig,
    pub catalog: Arc<ServiceCatalog>,
    pub data_dir: PathBuf,
    /// `[influx]` with INFLUX_* from the environment applied.
    pub influx: telltale_core::config::InfluxConfig,
    /// `[alertmanager]` with ALERTMANAGER_URL applied.
    pub alertmanager: telltale_core::config::AlertmanagerConfig,
    /// `[postgres]` with POSTGRES_URL / DATABASE_URL / POSTGRES_PASSWORD applied.
    pub postgres: telltale_core::config::PostgresConfig,
    /// Where each file came from, or that built-in defaults were used.
    pub pipeline_source: String,
    pub catalog_source: String,
}

/// A missing file at the default path means "use the defaults" (so the binary works from
/// any directory); a missing file the user named is an error.
fn read_optional(path: &Path, default_path: &str) -> anyhow::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && path == Path::new(default_path) => {
            Ok(None)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

pub fn load(args: &ConfigArgs) -> anyhow::Result<Loaded> {
    let cfg_label = args.config.display().to_string();
    let (pipeline, pipeline_source) = match read_optional(&args.config, "config/telltale.toml")? {
        Some(text) => (PipelineConfig::from_toml_str(&text, &cfg_label)?, cfg_label),
        None => (
            PipelineConfig::default(),
            "built-in defaults (config/telltale.toml not found)".to_owned(),
        ),
    };
    let svc_label = args.services.display().to_string();
    let (catalog, catalog_source) = match read_optional(&args.services, "config/services.toml")? {
        Some(text) => (ServiceCatalog::from_toml_str(&text, &svc_label)?, svc_label),
        None => (
            ServiceCatalog::from_toml_str("", "built-in")?,
            "built-in defaults (config/services.toml not found: every service is unowned)"
                .to_owned(),
        ),
    };
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&pipeline.lake.data_dir));
    let env = |k: &str| std::env::var(k).ok();
    let influx = pipeline.influx.clone().with_env(env)?;
    influx.validate("INFLUX_* environment")?;
    let alertmanager = pipeline.alertmanager.clone().with_env(env);
    alertmanager.validate("ALERTMANAGER_URL environment")?;
    let postgres = pipeline.postgres.clone().with_env(env);
    postgres.validate("config or POSTGRES_URL environment")?;
    Ok(Loaded {
        pipeline,
        catalog: Arc::new(catalog),
        data_dir,
        influx,
        alertmanager,
        postgres,
        pipeline_source,
        catalog_source,
    })
}

/// The bearer tokens: write (ingest) tokens from `server.tokens_file` and
/// `TELLTALE_INGEST_TOKENS`, admin tokens from `server.admin_tokens_file` and
/// `TELLTALE_ADMIN_TOKENS`, read-only tokens from `server.read_tokens_file` and
/// `TELLTALE_READ_TOKENS` (each comma-separated), and whether reading needs one.
pub fn tokens(cfg: &PipelineConfig) -> anyhow::Result<Tokens> {
    let read = |key: &str, file: &Option<String>, env: &str| -> anyhow::Result<Vec<String>> {
        let mut tokens = Vec::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading server.{key} {path}"))?;
            tokens.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_owned),
            );
        }
        if let Ok(value) = std::env::var(env) {
            tokens.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned),
            );
        }
        Ok(tokens)
    };
    let s = &cfg.server;
    let tokens = Tokens::new(
        read("tokens_file", &s.tokens_file, "TELLTALE_INGEST_TOKENS")?,
        read(
            "admin_tokens_file",
            &s.admin_tokens_file,
            "TELLTALE_ADMIN_TOKENS",
        )?,
    )
    .with_reads(
        read(
            "read_tokens_file",
            &s.read_tokens_file,
            "TELLTALE_READ_TOKENS",
        )?,
        s.read_requires_token,
    );
    if tokens.reads_closed() && !tokens.any() {
        anyhow::bail!(
            "server.read_requires_token is on but no token is configured, so nobody could              read: set server.read_tokens_file (or TELLTALE_READ_TOKENS), or turn it off"
        );
    }
    Ok(tokens)
}
