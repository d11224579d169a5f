//! Service profiles: how each simulated service behaves, from the catalogue's
//! `[services.NAME.sim]` tables with every missing value derived from a stable hash of the
//! service name (so the same name always behaves the same way, on every machine and build).

use serde::{Deserialize, Serialize};
use telltale_core::ServiceCatalog;
use telltale_core::config::ServicePolicy;

/// Services simulated when the catalogue lists none: plain names with no team, so they show
/// up as `unowned` in the pipeline.
pub const DEFAULT_SERVICES: [&str; 5] = ["frontend", "api", "auth", "orders", "search"];

/// Regions a simulated service may run in.
const REGIONS: [&str; 6] = [
    "eu-west-1",
    "eu-central-1",
    "us-east-1",
    "us-west-2",
    "ap-southeast-2",
    "ap-northeast-1",
];

/// 64-bit FNV-1a: stable across builds and platforms, unlike `std`'s `RandomState`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// SplitMix64 finaliser: spreads a hash (or a counter) over all 64 bits.
pub(crate) fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A deterministic stream of uniform numbers derived from a name and a purpose, so each
/// derived property of a service is independent of the others.
pub(crate) fn unit(name: &str, purpose: &str) -> f64 {
    let h = splitmix64(fnv1a64(name.as_bytes()) ^ splitmix64(fnv1a64(purpose.as_bytes())));
    // 53 random bits -> [0, 1)
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// The simulator's complete, resolved profile of one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceProfile {
    /// Service name as it appears in events.
    pub name: String,
    /// Median latency in milliseconds under normal conditions.
    pub baseline_latency_ms: f64,
    /// Sigma of ln(latency): the spread of the log-normal latency.
    pub latency_sigma: f64,
    /// Share of traffic relative to the other services.
    pub weight: f64,
    /// Fraction of requests that fail with a 5xx under normal conditions.
    pub error_rate: f64,
    /// Endpoints as written in the catalogue, e.g. `"POST /v1/login"`.
    pub endpoints: Vec<String>,
    /// Regions the service runs in (events pick one at random).
    pub regions: Vec<String>,
    /// Instances per service; events name `<service>-<1..=instances>`.
    pub instances: u32,
}

impl ServiceProfile {
    /// Resolves a service's profile: the catalogue's `sim` values where given, the rest
    /// derived from the name (deterministically) and from the service's own SLOs, so that
    /// normal traffic stays well inside its budgets and only incidents burn them: error
    /// rate 10–35% of the availability budget; median latency such that the threshold is
    /// 3–3.6 sigma above it (a slow share of about 0.02–0.13%); sigma 0.4–0.6; weight
    /// 0.5–3; endpoints `["GET /"]`; always derived: 1–3 regions, 2–6 instances.
    pub fn resolve(policy: &ServicePolicy) -> Self {
        let (name, spec) = (policy.name.as_str(), &policy.sim);
        let lerp = |lo: f64, hi: f64, purpose: &str| lo + (hi - lo) * unit(name, purpose);
        let sigma = spec
            .latency_sigma
            .unwrap_or_else(|| round3(lerp(0.4, 0.6, "sigma")));
        let baseline = spec.baseline_latency_ms.unwrap_or_else(|| {
            (policy.latency_threshold_ms / (sigma * lerp(3.0, 3.6, "baseline")).exp()).max(0.5)
        });
        let availability_budget = 1.0 - policy.availability_objective;
        let region_count = 1 + (unit(name, "region-count") * 3.0) as usize;
        let first_region = (unit(name, "region") * REGIONS.len() as f64) as usize;
        let regions = (0..region_count.min(3))
            .map(|i| REGIONS[(first_region + i * 2) % REGIONS.len()].to_owned())
            .collect();
        Self {
            name: name.to_owned(),
            baseline_latency_ms: round3(baseline),
            latency_sigma: sigma,
            weight: spec
                .weight
                .unwrap_or_else(|| round3(lerp(0.5, 3.0, "weight"))),
            error_rate: spec.error_rate.unwrap_or_else(|| {
                (availability_budget * lerp(0.10, 0.35, "error-rate") * 1e7).round() / 1e7
            }),
            endpoints: spec
                .endpoints
                .clone()
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| vec!["GET /".to_owned()]),
            regions,
            instances: 2 + (unit(name, "instances") * 5.0) as u32,
        }
    }

    /// Profiles for every catalogued service in name order, or for [`DEFAULT_SERVICES`]
    /// when the catalogue is empty.
    pub fn from_catalog(catalog: &ServiceCatalog) -> Vec<Self> {
        if catalog.is_empty() {
            DEFAULT_SERVICES
                .iter()
                .map(|n| Self::resolve(&catalog.default_policy(n)))
                .collect()
        } else {
            catalog.services().map(|p| Self::resolve(p)).collect()
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// One endpoint, ready for fast formatting: the method and the route template.
///
/// The route is emitted as written (`/v1/users/{id}`), as OpenTelemetry's `http.route`
/// and every APM do: an endpoint column with one value per user id would make "slowest
/// endpoints" meaningless and blow up cardinality downstream.
#[derive(Debug, Clone)]
pub(crate) struct EndpointTemplate {
    /// JSON-escaped method, e.g. `POST`.
    pub method: Vec<u8>,
    /// JSON-escaped route template, e.g. `/v1/users/{id}`.
    pub route: Vec<u8>,
}

impl EndpointTemplate {
    /// Parses `"POST /v1/users/{id}"`. A spec without a method (`"/health"`) is a `GET`.
    pub fn parse(spec: &str) -> Self {
        let spec = spec.trim();
        let (method, path) = match spec.split_once(char::is_whitespace) {
            Some((m, p)) => (m.to_ascii_uppercase(), p.trim()),
            None => ("GET".to_owned(), spec),
        };
        let path = if path.is_empty() { "/" } else { path };
        Self {
            method: json_inner(&method),
            route: json_inner(path),
        }
    }
}

/// The JSON-escaped text of a string, without the surrounding quotes.
pub(crate) fn json_inner(s: &str) -> Vec<u8> {
    let quoted = serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned());
    quoted.as_bytes()[1..quoted.len() - 1].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_reference_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn derived_values_are_in_range_and_stable() {
        // Defaults: 300 ms threshold, 99.9% availability (a 0.1% budget).
        let c = ServiceCatalog::from_toml_str("", "services.toml").unwrap();
        for i in 0..500 {
            let name = format!("svc-{i}");
            let policy = c.default_policy(&name);
            let p = ServiceProfile::resolve(&policy);
            // 300 / e^(0.6 * 3.6) ≈ 34.6 .. 300 / e^(0.4 * 3.0) ≈ 90.4
            assert!((34.5..=90.5).contains(&p.baseline_latency_ms), "{p:?}");
            assert!((0.4..=0.6).contains(&p.latency_sigma), "{p:?}");
            assert!((0.5..=3.0).contains(&p.weight), "{p:?}");
            assert!((0.0001..=0.00035).contains(&p.error_rate), "{p:?}");
            assert_eq!(p.endpoints, vec!["GET /"]);
            assert!((1..=3).contains(&p.regions.len()), "{p:?}");
            assert!((2..=6).contains(&p.instances), "{p:?}");
            assert_eq!(p, ServiceProfile::resolve(&policy));
        }
    }

    #[test]
    fn catalogue_values_win_over_derived_ones() {
        let c = ServiceCatalog::from_toml_str(
            "[services.auth-service.sim]\nbaseline_latency_ms = 45.0\nweight = 3.0\nerror_rate = 0.0004\nendpoints = [\"POST /v1/login\"]\n",
            "services.toml",
        )
        .unwrap();
        let p = ServiceProfile::resolve(c.get("auth-service").unwrap());
        assert_eq!(p.baseline_latency_ms, 45.0);
        assert_eq!(p.weight, 3.0);
        assert_eq!(p.error_rate, 0.0004);
        assert_eq!(p.endpoints, vec!["POST /v1/login"]);
        assert!((0.4..=0.6).contains(&p.latency_sigma));
    }

    #[test]
    fn empty_catalogue_simulates_default_services() {
        let c = ServiceCatalog::from_toml_str("", "services.toml").unwrap();
        let names: Vec<_> = ServiceProfile::from_catalog(&c)
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, DEFAULT_SERVICES);
    }

    #[test]
    fn endpoint_templates_split_method_and_keep_the_route() {
        let t = EndpointTemplate::parse("post /v1/users/{id}/send");
        assert_eq!(t.method, b"POST");
        assert_eq!(t.route, b"/v1/users/{id}/send");
        let t = EndpointTemplate::parse("/health");
        assert_eq!(t.method, b"GET");
        assert_eq!(t.route, b"/health");
        let t = EndpointTemplate::parse("GET /a\"b/{unclosed");
        assert_eq!(t.route, br#"/a\"b/{unclosed"#.to_vec());
    }

    /// `erfc` (Numerical Recipes' erfcc, relative error below 1.2e-7) for the log-normal tail.
    fn erfc(x: f64) -> f64 {
        let z = x.abs();
        let t = 1.0 / (1.0 + 0.5 * z);
        let r = t
            * (-z * z - 1.265_512_23
                + t * (1.000_023_68
                    + t * (0.374_091_96
                        + t * (0.096_784_18
                            + t * (-0.186_288_06
                                + t * (0.278_868_07
                                    + t * (-1.135_203_98
                                        + t * (1.488_515_87
                                            + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
                .exp();
        if x >= 0.0 { r } else { 2.0 - r }
    }

    /// Regression test for "15 of 20 services red after a quiet hour": normal traffic of
    /// every shipped service must sit well inside both of its budgets, so that colour on
    /// the dashboards means an incident.
    #[test]
    fn shipped_catalogue_profiles_stay_inside_their_budgets() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../config/services.toml"
        ))
        .unwrap();
        let c = ServiceCatalog::from_toml_str(&text, "config/services.toml").unwrap();
        for policy in c.services() {
            let p = ServiceProfile::resolve(policy);
            let error_budget = 1.0 - policy.availability_objective;
            assert!(
                p.error_rate <= 0.5 * error_budget,
                "{}: normal error rate {} is over half its budget {error_budget}",
                p.name,
                p.error_rate
            );
            let z = (policy.latency_threshold_ms / p.baseline_latency_ms).ln() / p.latency_sigma;
            let slow_share = 0.5 * erfc(z / std::f64::consts::SQRT_2);
            let latency_budget = 1.0 - policy.latency_objective;
            assert!(
                slow_share <= 0.5 * latency_budget,
                "{}: normal slow share {slow_share:.5} is over half its latency budget {latency_budget}",
                p.name
            );
        }
    }

    #[test]
    fn erfc_matches_known_values() {
        for (x, want) in [
            (0.0, 1.0),
            (1.0, 0.157_299_207),
            (2.0, 0.004_677_735),
            (-1.0, 1.842_700_793),
        ] {
            assert!((erfc(x) - want).abs() < 1e-7, "erfc({x})");
        }
    }
}
