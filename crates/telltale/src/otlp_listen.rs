//! `--otlp-listen` and `--otlp-grpc-listen`: the OTLP source on listeners of its own, at
//! the standard ports (4318 for OTLP/HTTP, 4317 for OTLP/gRPC), beside the processor's
//! main listener, which serves OTLP/HTTP too. Both share the main listener's processing
//! pool, body budget, tokens and shutdown drain (one [`IngestState`]), and its TLS.

use anyhow::Context;
use telltale_core::auth::Tokens;
use telltale_core::config::ServerTlsConfig;
use telltale_processor::sources::http::IngestState;
use telltale_processor::sources::otlp;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OtlpListenArgs {
    /// Also serve OTLP/HTTP (POST /v1/traces, /v1/logs) on this address, e.g.
    /// 0.0.0.0:4318 (the main --listen serves them too). Off by default.
    #[arg(long, env = "TELLTALE_OTLP_LISTEN", value_name = "ADDR")]
    pub otlp_listen: Option<String>,
    /// Serve OTLP/gRPC (TraceService, LogsService) on this address, e.g. 0.0.0.0:4317.
    /// Off by default.
    #[arg(long, env = "TELLTALE_OTLP_GRPC_LISTEN", value_name = "ADDR")]
    pub otlp_grpc_listen: Option<String>,
}

/// The servers started, stopped by [`Started::stop`].
#[derive(Debug)]
pub struct Started {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<std::io::Result<()>>>,
}

impl Started {
    /// Stops accepting, lets requests in flight finish, and waits for the servers.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        for t in self.tasks {
            t.await
                .context("an OTLP server panicked")?
                .context("an OTLP server failed")?;
        }
        Ok(())
    }
}

/// Binds and serves the listeners the flags ask for; with `print_address` each bound
/// address goes to stdout as `otlp-http ADDR` / `otlp-grpc ADDR` (after the main
/// listener's line).
pub async fn start(
    args: &OtlpListenArgs,
    state: &IngestState,
    tokens: &Tokens,
    tls: &ServerTlsConfig,
    print_address: bool,
) -> anyhow::Result<Started> {
    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::new();
    let until_stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    if let Some(listen) = &args.otlp_listen {
        let (listener, addr) = crate::listen::bind_extra(
            listen,
            "--otlp-listen",
            "0.0.0.0:4318",
            "the OTLP/HTTP server",
            tls,
            false,
            print_address.then_some("otlp-http"),
        )
        .await?;
        let app = crate::guard::guarded(
            otlp::http::routes(state.clone()),
            otlp::ROUTES.to_vec(),
            tokens.clone(),
            None,
        );
        tracing::info!(
            "OTLP/HTTP on {}://{addr}: POST /v1/traces, /v1/logs",
            listener.scheme()
        );
        let serve = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<telltale_tls::Peer>(),
        )
        .with_graceful_shutdown(until_stopped(stopped.clone()));
        tasks.push(tokio::spawn(serve.into_future()));
    }
    if let Some(listen) = &args.otlp_grpc_listen {
        let (listener, addr) = crate::listen::bind_extra(
            listen,
            "--otlp-grpc-listen",
            "0.0.0.0:4317",
            "the OTLP/gRPC server",
            tls,
            true,
            print_address.then_some("otlp-grpc"),
        )
        .await?;
        // The services check the token themselves (gRPC metadata, gRPC status codes):
        // the HTTP guard's JSON answers mean nothing to a gRPC client.
        let app = otlp::grpc::router(state.clone());
        tracing::info!(
            "OTLP/gRPC on {}://{addr}: TraceService, LogsService",
            listener.scheme()
        );
        let serve = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<telltale_tls::Peer>(),
        )
        .with_graceful_shutdown(until_stopped(stopped.clone()));
        tasks.push(tokio::spawn(serve.into_future()));
    }
    Ok(Started { stop, tasks })
}
