//! The compose stack (`docker-compose.yml`, `Dockerfile`, `.env.example`) as Compose itself
//! reads it: `docker-compose config` (Debian's docker-compose v1, `apt-get install
//! docker-compose`; `./tests/run.sh` installs it) must accept the file with `.env.example`
//! as its environment, and the resolved configuration must hold the four services, a
//! healthcheck on each, `service_healthy` dependencies and pinned image tags. The
//! Dockerfile must build in stages and run as a non-root user.

use std::path::PathBuf;
use std::process::Command;

use serde_norway::Value;

use crate::support::repo_root;

fn docker_compose() -> PathBuf {
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join("docker-compose"));
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`docker-compose` not found in PATH or /usr/bin: this test validates \
                 docker-compose.yml with it. Install it with `apt-get install docker-compose` \
                 (./tests/run.sh installs it for you)"
            )
        })
}

/// `docker-compose config` of the stack with `.env.example`, parsed.
fn resolved_config() -> Value {
    let root = repo_root();
    let out = Command::new(docker_compose())
        .current_dir(&root)
        .env_remove("COMPOSE_FILE")
        .env_remove("COMPOSE_PROJECT_NAME")
        .arg("--env-file")
        .arg(root.join(".env.example"))
        .arg("-f")
        .arg(root.join("docker-compose.yml"))
        .arg("config")
        .output()
        .expect("running docker-compose");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "docker-compose config rejected docker-compose.yml ({}):\n{stderr}\n{stdout}",
        out.status
    );
    serde_norway::from_str(&stdout)
        .unwrap_or_else(|e| panic!("docker-compose config printed no YAML ({e}):\n{stdout}"))
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {v:?}"))
}

const SERVICES: [&str; 4] = [
    "influxdb2",
    "grafana",
    "telltale-processor",
    "telltale-simulator",
];

#[test]
fn compose_file_is_valid_and_complete() {
    let cfg = resolved_config();
    let services = cfg["services"].as_mapping().expect("a services mapping");
    let mut names: Vec<&str> = services.keys().map(|k| str_of(k, "service name")).collect();
    names.sort_unstable();
    let mut expected = SERVICES.to_vec();
    expected.sort_unstable();
    assert_eq!(names, expected, "the four services, nothing else");

    for name in SERVICES {
        let s = &cfg["services"][name];
        // Healthcheck: a test command, not disabled.
        let hc = &s["healthcheck"];
        assert!(
            hc.is_mapping() && !hc["test"].is_null(),
            "{name} has no healthcheck: {s:?}"
        );
        assert_ne!(
            hc["disable"],
            Value::Bool(true),
            "{name}: healthcheck disabled"
        );
        let test: Vec<&str> = match &hc["test"] {
            Value::Sequence(parts) => parts.iter().map(|p| str_of(p, "test")).collect(),
            other => vec![str_of(other, "healthcheck test")],
        };
        assert!(
            matches!(test.first(), Some(&"CMD") | Some(&"CMD-SHELL")),
            "{name}: healthcheck test {test:?}"
        );

        // Pinned images: a tag that names a version, never `latest` or none.
        let image = str_of(&s["image"], "image");
        if !s["build"].is_null() {
            assert_eq!(image, "telltale:local", "{name}: built from the Dockerfile");
        } else {
            let (_, tag) = image
                .rsplit_once(':')
                .unwrap_or_else(|| panic!("{name}: image {image:?} has no tag"));
            assert_ne!(tag, "latest", "{name}: image {image:?} is not pinned");
            assert!(
                tag.split('.').count() == 3 && tag.split('.').all(|p| p.parse::<u32>().is_ok()),
                "{name}: image {image:?} should be pinned to a full x.y.z version"
            );
        }
    }

    // Dependencies wait for health, not for a started container.
    for (service, on) in [
        ("grafana", "influxdb2"),
        ("telltale-processor", "influxdb2"),
        ("telltale-simulator", "telltale-processor"),
    ] {
        assert_eq!(
            cfg["services"][service]["depends_on"][on]["condition"].as_str(),
            Some("service_healthy"),
            "{service} must depend on {on} being healthy"
        );
    }

    // The processor: HTTP on 8080, InfluxDB 2.x sink, data on a named volume.
    let p = &cfg["services"]["telltale-processor"];
    let cmd: Vec<&str> = p["command"]
        .as_sequence()
        .expect("processor command")
        .iter()
        .map(|c| str_of(c, "command"))
        .collect();
    assert_eq!(cmd, ["process", "--listen", "0.0.0.0:8080"]);
    let env = &p["environment"];
    assert_eq!(env["INFLUX_URL"].as_str(), Some("http://influxdb2:8086"));
    assert_eq!(env["INFLUX_API"].as_str(), Some("v2"));
    for key in ["INFLUX_ORG", "INFLUX_BUCKET", "INFLUX_TOKEN"] {
        assert!(
            env[key].as_str().is_some_and(|v| !v.is_empty()),
            "processor: {key} from .env"
        );
    }
    let volumes: Vec<&str> = p["volumes"]
        .as_sequence()
        .expect("processor volumes")
        .iter()
        .map(|v| str_of(v, "volume"))
        .collect();
    assert!(
        volumes.iter().any(|v| v.starts_with("telltale-data:/data")),
        "processor data on the named volume: {volumes:?}"
    );
    assert!(cfg["volumes"]["telltale-data"].is_mapping());

    // The simulator feeds the processor over the compose network.
    let sim: Vec<&str> = cfg["services"]["telltale-simulator"]["command"]
        .as_sequence()
        .expect("simulator command")
        .iter()
        .map(|c| str_of(c, "command"))
        .collect();
    assert_eq!(
        sim,
        [
            "sim",
            "--backfill",
            "6h",
            "--rate",
            "200",
            "--output",
            "http://telltale-processor:8080/v1/events",
            "--control-listen",
            "0.0.0.0:8081"
        ]
    );
    // ... and publishes its control API for `telltale spike` on the host.
    let published = serde_norway::to_string(&cfg["services"]["telltale-simulator"]["ports"])
        .expect("simulator ports");
    assert!(
        published.contains("8081") && published.contains("127.0.0.1"),
        "the simulator publishes its control API port 8081 on 127.0.0.1: {published}"
    );

    // Grafana gets the provisioning, the dashboards and the alert rules.
    let g = &cfg["services"]["grafana"];
    let mounts: Vec<&str> = g["volumes"]
        .as_sequence()
        .expect("grafana volumes")
        .iter()
        .map(|v| str_of(v, "volume"))
        .collect();
    for target in [
        ":/etc/grafana/provisioning/datasources",
        ":/etc/grafana/provisioning/dashboards",
        ":/etc/grafana/provisioning/alerting",
        ":/etc/grafana/dashboards",
    ] {
        assert!(
            mounts.iter().any(|m| m.contains(target)),
            "grafana mounts nothing at {target}: {mounts:?}"
        );
    }
    assert!(
        mounts
            .iter()
            .any(|m| m.ends_with("/alerts:/etc/grafana/provisioning/alerting:ro")),
        "alerts/ is Grafana's alerting provisioning: {mounts:?}"
    );
    assert_eq!(
        g["environment"]["INFLUX_TOKEN"], env["INFLUX_TOKEN"],
        "Grafana reads with the token the processor writes with"
    );
}

/// The compose file follows the Compose Specification: no `version:` key.
#[test]
fn compose_file_has_no_version_key() {
    let text = std::fs::read_to_string(repo_root().join("docker-compose.yml")).unwrap();
    let doc: Value = serde_norway::from_str(&text).unwrap();
    assert!(doc["version"].is_null(), "drop the obsolete `version:` key");
}

/// Every `${VAR}` the compose file reads has a value in `.env.example`.
#[test]
fn every_compose_variable_is_in_env_example() {
    let root = repo_root();
    let compose = std::fs::read_to_string(root.join("docker-compose.yml")).unwrap();
    let example = std::fs::read_to_string(root.join(".env.example")).unwrap();
    let defined: Vec<&str> = example
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim()))
        .collect();
    let mut missing = Vec::new();
    for part in compose.split("${").skip(1) {
        let name: String = part
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !defined.contains(&name.as_str()) && !missing.contains(&name) {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "variables of docker-compose.yml missing from .env.example: {missing:?}"
    );
}

#[test]
fn dockerfile_is_multi_stage_and_runs_as_non_root() {
    let text = std::fs::read_to_string(repo_root().join("Dockerfile")).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    let froms: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("FROM "))
        .collect();
    assert_eq!(froms.len(), 2, "a builder and a runtime stage: {froms:?}");
    assert!(
        froms[0].starts_with("rust:1.9") && froms[0].ends_with("-bookworm AS builder"),
        "builder on a pinned rust:1.9x-bookworm: {}",
        froms[0]
    );
    assert_eq!(froms[1], "debian:bookworm-slim", "small runtime image");
    for image in &froms {
        assert!(!image.contains(":latest"), "{image} is not pinned");
    }
    // The last USER wins; it must not be root (name or uid 0).
    let user = lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the Dockerfile sets a USER");
    let name = user.split(':').next().unwrap().trim();
    assert!(
        name != "root" && name != "0",
        "the image runs as {user:?}: use a non-root user"
    );
    // The runtime stage holds the config files the binary reads by default.
    let runtime = text.split("FROM debian:bookworm-slim").nth(1).unwrap();
    assert!(
        runtime.contains("COPY config/"),
        "the runtime copies config/"
    );
    assert!(
        runtime.contains("COPY --from=builder"),
        "the runtime takes only the binary from the builder"
    );
}

/// The compose path run natively (no Docker engine here): the simulator's command from the
/// compose file, pointed at a real `telltale process` instead of the stub the simulator's
/// own tests use. Every event it sends is acknowledged and lands in the lake.
#[test]
fn the_simulators_http_output_feeds_a_real_processor() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("lake");
    let processor = crate::support::Server::start(
        crate::support::telltale()
            .arg("process")
            .args(crate::support::LISTEN)
            .arg("--data-dir")
            .arg(&data)
            .stderr(std::process::Stdio::inherit()),
    );
    // The compose command with a count instead of a rate and backfill: it ends by itself.
    let sim = crate::support::telltale()
        .args([
            "sim",
            "--seed",
            "3",
            "--count",
            "6000",
            "--batch-lines",
            "500",
            "--output",
        ])
        .arg(format!("{}/v1/events", processor.url()))
        .output()
        .unwrap();
    assert!(sim.status.success(), "{}", crate::support::describe(&sim));
    processor.sigterm_and_expect_success();
    let rows = crate::support::query_json(&data, "SELECT count(*) AS n FROM events");
    assert_eq!(rows[0]["n"], 6000, "{rows:?}");
}
