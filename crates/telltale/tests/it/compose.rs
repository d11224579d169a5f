//! The compose stack (`docker-compose.yml`, `Dockerfile`, `.env.example`) as Compose itself
//! reads it: `docker-compose config` (Debian's docker-compose v1, `apt-get install
//! docker-compose`; `./tests/run.sh` installs it) must accept the file with `.env.example`
//! as its environment, and the resolved configuration must hold the five services, a
//! healthcheck on each, `service_healthy` dependencies and pinned image tags. The
//! Dockerfile must build in stages and run as a non-root user. The real-probe service
//! (`telltale-probe`) runs as non-root with `NET_RAW` as its only capability, probes
//! `PROBE_TARGET` from `.env` into the processor, and skips a GeoIP file that is not
//! there; the image's binary carries the file capability it needs for that.

use std::path::{Path, PathBuf};
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

/// `docker-compose config` of the stack with `env_file` as its `.env`.
fn compose_config(env_file: &Path) -> std::process::Output {
    compose_config_with_profiles(env_file, &[])
}

/// `docker-compose [--profile P]... config` of the stack with `env_file` as its `.env`.
fn compose_config_with_profiles(env_file: &Path, profiles: &[&str]) -> std::process::Output {
    let root = repo_root();
    let mut cmd = Command::new(docker_compose());
    cmd.current_dir(&root)
        .env_remove("COMPOSE_FILE")
        .env_remove("COMPOSE_PROJECT_NAME");
    // The shell's environment wins over the env file in Compose: keep it out.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("PROBE_")
            || key.starts_with("GEOIP_")
            || key.starts_with("SIM_")
            || key.starts_with("TELLTALE_")
        {
            cmd.env_remove(key);
        }
    }
    for p in profiles {
        cmd.args(["--profile", p]);
    }
    cmd.arg("--env-file")
        .arg(env_file)
        .arg("-f")
        .arg(root.join("docker-compose.yml"))
        .arg("config")
        .output()
        .expect("running docker-compose")
}

/// `docker-compose config` of the stack with `env_file`, parsed.
fn resolved_config_with(env_file: &Path) -> Value {
    let out = compose_config(env_file);
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

/// `docker-compose config` of the stack with `.env.example`, parsed.
fn resolved_config() -> Value {
    resolved_config_with(&repo_root().join(".env.example"))
}

/// `.env.example` with `key`'s line replaced by `key=value` (or removed for `None`), in
/// a file of its own.
fn env_file_with(key: &str, value: Option<&str>) -> tempfile::NamedTempFile {
    let example = std::fs::read_to_string(repo_root().join(".env.example")).unwrap();
    let prefix = format!("{key}=");
    assert!(
        example.lines().any(|l| l.starts_with(&prefix)),
        ".env.example sets {key}"
    );
    let mut text: String = example
        .lines()
        .filter(|l| !l.starts_with(&prefix))
        .map(|l| format!("{l}\n"))
        .collect();
    if let Some(v) = value {
        text.push_str(&format!("{key}={v}\n"));
    }
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

fn strings<'a>(v: &'a Value, what: &str) -> Vec<&'a str> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("{what} is not a list: {v:?}"))
        .iter()
        .map(|c| str_of(c, what))
        .collect()
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {v:?}"))
}

const SERVICES: [&str; 6] = [
    "influxdb2",
    "grafana",
    "telltale-processor",
    "telltale-simulator",
    "telltale-probe",
    // Only with `--profile sso` (Compose v1's `config` lists every profile's services).
    "keycloak",
];

#[test]
fn compose_file_is_valid_and_complete() {
    let cfg = resolved_config();
    let services = cfg["services"].as_mapping().expect("a services mapping");
    let mut names: Vec<&str> = services.keys().map(|k| str_of(k, "service name")).collect();
    names.sort_unstable();
    let mut expected = SERVICES.to_vec();
    expected.sort_unstable();
    assert_eq!(names, expected, "the six services, nothing else");

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
        ("telltale-probe", "telltale-processor"),
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
    // Nothing is published beyond localhost by default (docs/security.md).
    for (name, service) in cfg["services"].as_mapping().expect("services") {
        let Some(ports) = service.get("ports").and_then(|p| p.as_sequence()) else {
            continue;
        };
        for port in ports {
            let text = serde_norway::to_string(port).unwrap();
            assert!(
                text.contains("127.0.0.1"),
                "{name:?} publishes a port beyond localhost: {text}"
            );
        }
    }

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

/// The image's `telltale` has the file capability `cap_net_raw+p` (permitted, not
/// effective: the binary raises it, and it still starts without NET_RAW), set in the
/// runtime stage (a COPY from the builder may drop the xattr) while still root, with
/// setcap's package gone again.
#[test]
fn dockerfile_gives_the_binary_cap_net_raw() {
    let text = std::fs::read_to_string(repo_root().join("Dockerfile")).unwrap();
    // Instructions of the runtime stage, continuation lines joined, comments dropped.
    let runtime = text.split("FROM debian:bookworm-slim").nth(1).unwrap();
    let joined = runtime
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("\\\n", " ");
    let instructions: Vec<&str> = joined.lines().map(str::trim).collect();
    let setcap = instructions
        .iter()
        .position(|l| {
            l.starts_with("RUN ")
                && l.split("&&").any(|c| {
                    c.split_whitespace().collect::<Vec<_>>()
                        == ["setcap", "cap_net_raw+p", "/usr/local/bin/telltale"]
                })
        })
        .unwrap_or_else(|| {
            panic!(
                "the runtime stage runs `setcap cap_net_raw+p /usr/local/bin/telltale`:\n{joined}"
            )
        });
    let run = instructions[setcap];
    assert!(
        run.contains("apt-get install") && run.contains("libcap2-bin"),
        "setcap comes from libcap2-bin, installed in the same step: {run}"
    );
    assert!(
        run.contains("apt-get purge") && run.contains("rm -rf /var/lib/apt/lists"),
        "libcap2-bin and the package lists are removed in the same step: {run}"
    );
    let user = instructions
        .iter()
        .rposition(|l| l.starts_with("USER "))
        .expect("a USER");
    assert!(setcap < user, "setcap runs as root, before USER");
    // No later step replaces the binary (which would drop the capability).
    for later in &instructions[setcap + 1..] {
        assert!(
            !(later.starts_with("COPY") || later.starts_with("ADD"))
                || !later.contains("/usr/local/bin/telltale "),
            "{later} replaces the binary after setcap"
        );
    }
}

/// The real-probe service: `telltale probe` in the same image, as uid 10001 with every
/// capability dropped but NET_RAW, sending to the processor's `/v1/events`; the targets
/// from `.env`; GeoIP files from a read-only host folder.
#[test]
fn the_probe_service_probes_env_targets_as_non_root_with_only_net_raw() {
    let cfg = resolved_config();
    let probe = &cfg["services"]["telltale-probe"];
    assert!(probe.is_mapping(), "a telltale-probe service: {cfg:?}");
    assert_eq!(str_of(&probe["image"], "image"), "telltale:local");
    assert!(!probe["build"].is_null(), "built from the Dockerfile");
    assert_eq!(
        probe["restart"].as_str(),
        Some("unless-stopped"),
        "{probe:?}"
    );

    // Non-root: a numeric uid:gid that is not 0.
    let user = str_of(&probe["user"], "user");
    assert_eq!(user, "10001:10001", "the image's non-root user");
    // Capabilities: all dropped, NET_RAW (and nothing else) added; no way around it.
    assert_eq!(strings(&probe["cap_drop"], "cap_drop"), ["ALL"]);
    assert_eq!(strings(&probe["cap_add"], "cap_add"), ["NET_RAW"]);
    assert_ne!(probe["privileged"], Value::Bool(true), "not privileged");
    assert!(
        probe["network_mode"].is_null(),
        "on the compose network, where telltale-processor resolves"
    );
    let security = serde_norway::to_string(&probe["security_opt"]).unwrap();
    assert!(
        !security.contains("no-new-privileges"),
        "no-new-privileges would ignore the binary's file capability: {security}"
    );

    // `telltale probe`, output to the processor's ingest.
    let command = strings(&probe["command"], "command");
    assert_eq!(command[0], "probe", "{command:?}");
    let output = command
        .iter()
        .position(|c| *c == "--output")
        .map(|i| command[i + 1])
        .unwrap_or_else(|| panic!("--output in {command:?}"));
    let listen = strings(&cfg["services"]["telltale-processor"]["command"], "command");
    let port = listen.last().unwrap().rsplit(':').next().unwrap();
    assert_eq!(
        output,
        format!("http://telltale-processor:{port}/v1/events"),
        "the processor's ingest over the compose network"
    );
    // The entrypoint wraps the image's own: it ends by running `telltale` with the command.
    let entrypoint = strings(&probe["entrypoint"], "entrypoint");
    assert!(
        entrypoint.last() == Some(&"telltale")
            && entrypoint[..entrypoint.len() - 1]
                .iter()
                .any(|p| p.contains("exec telltale \"$$@\"")),
        "{entrypoint:?}"
    );

    let env = &probe["environment"];
    let example = std::fs::read_to_string(repo_root().join(".env.example")).unwrap();
    let example_target = example
        .lines()
        .find_map(|l| l.strip_prefix("PROBE_TARGET="))
        .expect(".env.example sets PROBE_TARGET");
    assert_eq!(env["PROBE_TARGET"].as_str(), Some(example_target));
    for key in ["PROBE_AGENT", "PROBE_INTERVAL"] {
        let from_example = example
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!(".env.example sets {key}"));
        assert_eq!(env[key].as_str(), Some(from_example), "{key} from .env");
    }

    // The GeoIP folder, read-only, and the CLI's variables pointing into it.
    let volumes = strings(&probe["volumes"], "volumes");
    assert!(
        volumes.iter().any(|v| v.ends_with("/geoip:/geoip:ro")),
        "./geoip mounted read-only at /geoip: {volumes:?}"
    );
    assert_eq!(
        env["GEOIP_CITY_DB"].as_str(),
        Some("/geoip/GeoLite2-City.mmdb")
    );
    assert_eq!(
        env["GEOIP_ASN_DB"].as_str(),
        Some("/geoip/GeoLite2-ASN.mmdb")
    );
    assert!(
        repo_root().join("geoip/README.md").is_file(),
        "the geoip folder is in the repository (else Docker creates it, owned by root)"
    );

    // The simulator's made-up probes use a target of their own.
    let sim_target = &cfg["services"]["telltale-simulator"]["environment"]["PROBE_TARGET"];
    assert_ne!(
        sim_target, &env["PROBE_TARGET"],
        "simulated and real probes never share a target"
    );
}

/// `PROBE_TARGET` comes from `.env`: one target or several, and compose refuses to start
/// without it.
#[test]
fn probe_target_comes_from_env() {
    let targets = "api.example.net,10.0.0.7";
    let file = env_file_with("PROBE_TARGET", Some(targets));
    let cfg = resolved_config_with(file.path());
    assert_eq!(
        cfg["services"]["telltale-probe"]["environment"]["PROBE_TARGET"].as_str(),
        Some(targets)
    );
    assert_eq!(
        cfg["services"]["telltale-simulator"]["environment"]["PROBE_TARGET"].as_str(),
        Some("simulated.example"),
        "the simulator does not take the real targets"
    );

    let file = env_file_with("PROBE_TARGET", None);
    let out = compose_config(file.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("PROBE_TARGET"),
        "without PROBE_TARGET compose says to set it: {stderr}"
    );
}

/// The probe service's entrypoint, run here with a stand-in `telltale` that prints what
/// it was given: a GeoIP file that is there is passed on, one that is not is left out
/// (the CLI would fail on it), and the command reaches `telltale` unchanged.
#[test]
fn the_probe_entrypoint_leaves_out_missing_geoip_files() {
    let cfg = resolved_config();
    let probe = &cfg["services"]["telltale-probe"];
    let entrypoint = strings(&probe["entrypoint"], "entrypoint");
    assert_eq!(&entrypoint[..2], ["bash", "-c"], "{entrypoint:?}");
    // `$$` in the compose file is a `$` in the container.
    let script = entrypoint[2].replace("$$", "$");
    let rest = &entrypoint[3..];

    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let fake = bin.join("telltale");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho \"city=${GEOIP_CITY_DB-unset} asn=${GEOIP_ASN_DB-unset} args=$*\"\n",
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let city = dir.path().join("GeoLite2-City.mmdb");
    std::fs::write(&city, "a database").unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .args(rest)
        .args([
            "probe",
            "--output",
            "http://telltale-processor:8080/v1/events",
        ])
        .env("PATH", path)
        .env("GEOIP_CITY_DB", &city)
        .env("GEOIP_ASN_DB", dir.path().join("GeoLite2-ASN.mmdb"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(
        stdout.trim(),
        format!(
            "city={} asn=unset args=probe --output http://telltale-processor:8080/v1/events",
            city.display()
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("GeoLite2-ASN.mmdb"),
        "the missing file is named: {stderr}"
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

/// Issue #14: the stack sets telltale's tokens for every service. The processor requires
/// the ingest token, the simulator and the probe service send with it, the simulator's
/// control API requires the admin token, and compose refuses to start without them.
#[test]
fn every_telltale_service_has_its_token_from_env() {
    let config = resolved_config();
    let env = |service: &str, key: &str| -> String {
        config["services"][service]["environment"][key]
            .as_str()
            .unwrap_or_else(|| panic!("{service} sets {key}"))
            .to_owned()
    };
    let ingest = "change-me-ingest-token";
    assert_eq!(env("telltale-processor", "TELLTALE_INGEST_TOKENS"), ingest);
    assert_eq!(env("telltale-simulator", "TELLTALE_TOKEN"), ingest);
    assert_eq!(env("telltale-probe", "TELLTALE_TOKEN"), ingest);
    assert_eq!(
        env("telltale-simulator", "TELLTALE_ADMIN_TOKENS"),
        "change-me-admin-token"
    );
    for key in ["TELLTALE_INGEST_TOKEN", "TELLTALE_ADMIN_TOKEN"] {
        let env_file = env_file_with(key, None);
        let out = compose_config(env_file.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "starts without {key}");
        assert!(stderr.contains(key), "names {key}: {stderr}");
    }
}

#[test]
fn the_sso_profile_adds_keycloak_with_a_realm_that_requires_otp() {
    let root = repo_root();
    let out = compose_config_with_profiles(&root.join(".env.example"), &["sso"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "docker-compose --profile sso config: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg: Value = serde_norway::from_str(&stdout).unwrap();
    let kc = &cfg["services"]["keycloak"];
    assert_eq!(strings(&kc["profiles"], "profiles"), ["sso"]);
    assert!(str_of(&kc["image"], "image").starts_with("quay.io/keycloak/keycloak:"));
    let cmd = strings(&kc["command"], "command");
    assert!(
        cmd.contains(&"start-dev") && cmd.contains(&"--import-realm"),
        "{cmd:?}"
    );
    let volumes = format!("{:?}", kc["volumes"]);
    assert!(volumes.contains("deploy/keycloak"), "{volumes}");
    for name in SERVICES.iter().filter(|n| **n != "keycloak") {
        assert!(
            cfg["services"][name]["profiles"].is_null(),
            "{name} is always on"
        );
    }
    // Grafana signs in through the same provider (generic OAuth, off by default).
    let gf = &cfg["services"]["grafana"]["environment"];
    assert_eq!(
        str_of(&gf["GF_AUTH_GENERIC_OAUTH_ENABLED"], "enabled"),
        "false"
    );
    assert!(str_of(&gf["GF_AUTH_GENERIC_OAUTH_AUTH_URL"], "auth url").ends_with("/auth"));
    assert_eq!(
        str_of(&gf["GF_AUTH_GENERIC_OAUTH_USE_PKCE"], "pkce"),
        "true"
    );

    // The realm: both clients, the groups telltale maps, OTP required for everyone.
    let realm: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("deploy/keycloak/telltale-realm.json")).unwrap(),
    )
    .unwrap();
    let clients: Vec<&str> = realm["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["clientId"].as_str().unwrap())
        .collect();
    assert_eq!(clients, ["telltale", "grafana"]);
    let groups = realm["groups"].to_string();
    assert!(groups.contains("telltale-admins") && groups.contains("telltale-readers"));
    let totp = realm["requiredActions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["alias"] == "CONFIGURE_TOTP")
        .expect("CONFIGURE_TOTP");
    assert_eq!(totp["enabled"], true);
    assert_eq!(totp["defaultAction"], true, "every new user sets up TOTP");
    let flow_name = realm["browserFlow"].as_str().unwrap();
    let flows = realm["authenticationFlows"].as_array().unwrap();
    let top = flows.iter().find(|f| f["alias"] == flow_name).unwrap();
    let forms = top["authenticationExecutions"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|e| e["flowAlias"].as_str())
        .unwrap();
    let forms = flows.iter().find(|f| f["alias"] == forms).unwrap();
    let otp = forms["authenticationExecutions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["authenticator"] == "auth-otp-form")
        .expect("an OTP step in the browser flow");
    assert_eq!(otp["requirement"], "REQUIRED", "OTP is not optional");
    for user in realm["users"].as_array().unwrap() {
        let actions = user["requiredActions"].to_string();
        assert!(actions.contains("CONFIGURE_TOTP"), "{user}");
    }
}
