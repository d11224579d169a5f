//! Every file in `config/` parses and validates, so a shipped config can never be broken.

use telltale_core::{PipelineConfig, ServiceCatalog};

use crate::support::repo_root;

fn config_dir() -> std::path::PathBuf {
    repo_root().join("config")
}

#[test]
fn every_file_in_config_parses() {
    let mut seen = 0;
    for entry in std::fs::read_dir(config_dir()).expect("config/ exists") {
        let path = entry.expect("readable entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let text = std::fs::read_to_string(&path).expect("readable file");
        match name.as_str() {
            "services.toml" => {
                let c =
                    ServiceCatalog::from_toml_str(&text, &name).unwrap_or_else(|e| panic!("{e}"));
                assert!(
                    c.len() >= 15,
                    "the shipped catalogue is realistic: {} services",
                    c.len()
                );
                assert!(c.teams().len() >= 5, "{} teams", c.teams().len());
            }
            "telltale.toml" => {
                let c =
                    PipelineConfig::from_toml_str(&text, &name).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(
                    c,
                    PipelineConfig::default(),
                    "telltale.toml documents the defaults"
                );
            }
            other => panic!("config/{other} is not parsed by any test: add it here"),
        }
        seen += 1;
    }
    assert!(seen >= 2);
}

/// The commented `[probes."example.com"]` example of `config/services.toml` works when a
/// user uncomments it.
#[test]
fn the_probe_slo_example_in_services_toml_parses_when_uncommented() {
    let text = std::fs::read_to_string(config_dir().join("services.toml")).unwrap();
    let example: String = text
        .lines()
        .skip_while(|l| !l.starts_with("# [probes."))
        .take_while(|l| l.starts_with("# "))
        .map(|l| format!("{}\n", &l[2..]))
        .collect();
    assert!(!example.is_empty(), "the example is in the file");
    let uncommented = format!("{text}\n{example}");
    let c = ServiceCatalog::from_toml_str(&uncommented, "services.toml")
        .unwrap_or_else(|e| panic!("{e}\n{example}"));
    let p = c.probe("example.com").expect("the example's probe target");
    assert_eq!((&*p.team, p.latency_threshold_ms), ("network", 150.0));
}

/// The README shows the datafusion-cli session from `docs/lake-queries.sql`, which a
/// telltale-lake test runs; this keeps the two from drifting apart.
#[test]
fn readme_shows_the_tested_datafusion_cli_session() {
    let root = repo_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let sql = std::fs::read_to_string(root.join("docs/lake-queries.sql")).unwrap();
    let from_create = &sql[sql
        .find("CREATE EXTERNAL TABLE")
        .expect("the file creates tables")..];
    assert!(
        readme.contains(from_create.trim()),
        "README.md must contain docs/lake-queries.sql from CREATE on"
    );
}

/// The commented `[monitor_defaults]` and `[monitors."…"]` examples of
/// `config/services.toml` parse when uncommented, and the defaults shown are the built-in
/// ones.
#[test]
fn the_monitor_slo_examples_in_services_toml_parse_when_uncommented() {
    let text = std::fs::read_to_string(config_dir().join("services.toml")).unwrap();
    let block = |start: &str| -> String {
        text.lines()
            .skip_while(|l| !l.starts_with(start))
            .take_while(|l| l.starts_with("# "))
            .map(|l| format!("{}\n", &l[2..]))
            .collect()
    };
    let (defaults, monitor) = (block("# [monitor_defaults]"), block("# [monitors."));
    assert!(
        !defaults.is_empty() && !monitor.is_empty(),
        "the examples are in the file"
    );
    let builtin = ServiceCatalog::from_toml_str("", "services.toml").unwrap();
    let shown = ServiceCatalog::from_toml_str(&defaults, "services.toml")
        .unwrap_or_else(|e| panic!("{e}\n{defaults}"));
    let url = "https://other.example/";
    assert_eq!(shown.monitor(url), builtin.monitor(url), "{defaults}");
    let uncommented = format!("{text}\n{defaults}\n{monitor}");
    let c = ServiceCatalog::from_toml_str(&uncommented, "services.toml")
        .unwrap_or_else(|e| panic!("{e}\n{monitor}"));
    let m = c.monitor("https://example.com/health");
    assert!(m.known && m.monitor);
    assert_eq!((&*m.team, m.latency_threshold_ms), ("web", 500.0));
}
