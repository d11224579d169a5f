//! `telltale process --input`: which pull source reads the input (a file to its end,
//! stdin, or a followed file) and which format maps its lines, from the flags; and the
//! drain of that source through the pipeline with a progress bar.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use telltale_core::access_log::Mapper;
use telltale_core::config::{ACCESS_LOG_PRESETS, AccessLogFormat};
use telltale_processor::Pipeline;
use telltale_processor::sources::follow::{self, Checkpointer, FollowSettings};
use telltale_processor::sources::format::MappedSource;
use telltale_processor::sources::{BatchSource, DrainSummary, drain_source, file, stdin};

use crate::config_load::Loaded;

/// The input flags of `telltale process`.
#[derive(Debug, Clone, clap::Args)]
pub struct InputArgs {
    /// File to read to its end, or `-` for stdin; then flush and exit (unless --listen
    /// or --follow is also given).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Keep reading the --input file as it grows, like `tail -F`: through rotations
    /// (rename + new file, copytruncate) until Ctrl-C or SIGTERM, from where it stopped
    /// last time (a checkpoint under `<data_dir>/follow/`).
    #[arg(long, requires = "input")]
    pub follow: bool,
    /// The shape of the input's lines: `telltale` (the default: telltale's own JSON
    /// lines), a JSON access log preset (`nginx`, `envoy`, `traefik`; see
    /// docs/access-logs.md), or the name of a `[formats.<name>]` table of the config.
    #[arg(long, default_value = "telltale", requires = "input")]
    pub format: String,
    /// With an access log --format: the service every line belongs to (wins over the
    /// format's service field).
    #[arg(long, requires = "input")]
    pub service: Option<String>,
    /// With --follow: how often the end of the file is looked at again.
    #[arg(long, default_value = "250ms", value_parser = humantime::parse_duration)]
    pub poll_interval: Duration,
}

/// What to read and how, checked.
#[derive(Debug, Clone)]
pub struct Input {
    /// The file, or `-`.
    pub path: PathBuf,
    /// The access log mapping, unless the lines are telltale's own.
    pub mapper: Option<Mapper>,
    /// How to follow the file, with `--follow`.
    pub follow: Option<FollowSettings>,
}

impl Input {
    /// The input the flags name, `None` without `--input`. A `--format` that names no
    /// format is an error listing the valid ones.
    pub fn from_args(args: &InputArgs, loaded: &Loaded) -> anyhow::Result<Option<Self>> {
        let Some(path) = args.input.clone() else {
            return Ok(None);
        };
        let mapper = match args.format.as_str() {
            "telltale" => {
                if args.service.is_some() {
                    anyhow::bail!(
                        "--service applies to an access log --format (nginx, envoy, traefik or a [formats.<name>] table); telltale lines carry their own service"
                    );
                }
                None
            }
            name => {
                let format = AccessLogFormat::preset(name)
                    .or_else(|| loaded.pipeline.formats.get(name).cloned())
                    .with_context(|| {
                        let mut valid: Vec<&str> = vec!["telltale"];
                        valid.extend(ACCESS_LOG_PRESETS);
                        valid.extend(loaded.pipeline.formats.keys().map(String::as_str));
                        format!(
                            "--format {name:?} is not a known format: use one of {} (or add a [formats.{name}] table to the config)",
                            valid.join(", ")
                        )
                    })?;
                Some(Mapper::new(format, name, args.service.as_deref()))
            }
        };
        if args.follow && path == Path::new("-") {
            anyhow::bail!("--follow reads a file that grows; stdin (`-`) is read live already");
        }
        let follow = args.follow.then(|| FollowSettings {
            checkpoint_dir: loaded.data_dir.join("follow"),
            poll_interval: args.poll_interval,
            max_line_bytes: loaded.pipeline.validation.max_line_bytes,
        });
        Ok(Some(Self {
            path,
            mapper,
            follow,
        }))
    }
}

/// Reads the input through the pipeline with a progress bar, then flushes. A followed
/// file is read until `stop` turns true, and its checkpoint saved after each batch the
/// pipeline acknowledged.
pub fn drain_input(
    pipeline: &Pipeline,
    input: &Input,
    max_line_bytes: usize,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<DrainSummary> {
    let path = &input.path;
    let mut checkpointer: Option<Checkpointer> = None;
    let (source, total): (Box<dyn BatchSource>, Option<u64>) = if let Some(f) = &input.follow {
        let (source, ck) =
            follow::open(path, f, stop).with_context(|| format!("following {}", path.display()))?;
        checkpointer = Some(ck);
        tracing::info!(path = %path.display(), "following the file (Ctrl-C or SIGTERM to stop)");
        (Box::new(source), None)
    } else if path == Path::new("-") {
        (Box::new(stdin::stdin(max_line_bytes)), None)
    } else {
        let opened = file::open(path, max_line_bytes)
            .with_context(|| format!("opening {}", path.display()))?;
        (opened.source, opened.len)
    };
    let mut source: Box<dyn BatchSource> = match &input.mapper {
        Some(m) => Box::new(MappedSource::new(source, m.clone())),
        None => source,
    };
    let bar = match total {
        Some(len) => ProgressBar::new(len).with_style(
            ProgressStyle::with_template(
                "{spinner} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {bytes} {bytes_per_sec} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    let (mut accepted, mut rejected) = (0u64, 0u64);
    // One parse thread per core: the writer thread keeps up by using the cores while the
    // parsers wait on it (the queues between them are bounded).
    let parse_threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let summary = drain_source(pipeline, source.as_mut(), parse_threads, |outcome, len| {
        accepted += outcome.accepted;
        rejected += outcome.rejected;
        if let Some(ck) = &checkpointer
            && let Err(e) = ck.acked()
        {
            tracing::warn!(error = %e, "saving the follow checkpoint failed: a restart reads these lines again");
        }
        bar.inc(len as u64);
        bar.set_message(format!("{accepted} accepted, {rejected} rejected"));
    })
    .with_context(|| format!("processing {}", path.display()))?;
    bar.finish_and_clear();
    Ok(summary)
}
