//! The InfluxDB sink: rollups (`service_rollup`), probes (`probe`, `probe_hop`), URL
//! check results (`http_check`) and SLO
//! state (`slo_status`) as line protocol to InfluxDB 1.x, 2.x or 3.x. The delivery itself
//! — batching, gzip, retries, the disk spool and dead letters — is `telltale-influx`'s
//! [`InfluxSink`]; this adapts it to the processor's [`Sink`].

use telltale_core::{HttpCheckEvent, ProbeEvent, RollupRow};
use telltale_influx::InfluxSink;

use super::sink::{Evaluation, Sink};

/// [`InfluxSink`] as a processor sink.
#[derive(Debug, Clone)]
pub struct InfluxOutput(pub InfluxSink);

impl Sink for InfluxOutput {
    fn on_rollups(&mut self, rows: &[RollupRow]) {
        self.0.send(rows);
    }

    fn on_probes(&mut self, probes: &[ProbeEvent]) {
        self.0.send(probes);
    }

    fn on_checks(&mut self, checks: &[HttpCheckEvent]) {
        self.0.send(checks);
    }

    fn on_evaluation(&mut self, evaluation: &Evaluation<'_>) {
        self.0.send(evaluation.statuses);
    }
}
