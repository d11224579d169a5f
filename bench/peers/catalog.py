"""The service catalogue (config/services.toml) as the peers need it: team and latency
threshold per service, and the defaults telltale applies to a service that is not listed
(crates/telltale-core/src/config.rs `default_policy`: team and threshold from [defaults],
falling back to "unowned" and 300 ms)."""

import tomllib


def load(path):
    with open(path, "rb") as f:
        doc = tomllib.load(f)
    defaults = doc.get("defaults", {})
    default_team = defaults.get("team", "unowned")
    default_threshold = float(defaults.get("latency_threshold_ms", 300.0))
    rows = []
    for name, spec in sorted(doc.get("services", {}).items()):
        rows.append(
            (
                name,
                spec.get("team", default_team),
                float(spec.get("latency_threshold_ms", default_threshold)),
            )
        )
    return rows, default_team, default_threshold
