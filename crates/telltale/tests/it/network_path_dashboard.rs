//! Every InfluxQL query of the network path dashboard (`grafana/dashboards/network-path.json`:
//! panels, annotations, variables) run against a real InfluxDB 1.x holding real
//! `telltale probe` output, with the dashboard's own transformations applied as Grafana
//! applies them, and the values its panels would show checked against the network the
//! probes ran on.
//!
//! The data: `support::netns` builds client → r1 → r2 → server (and r3, a second way from
//! r1 to the server), `support::mmdb` City/ASN databases for its addresses, and
//! `server.<net>.test` is named in the client's hosts file. `telltale probe` runs three
//! rounds in the client's namespace. The first goes r1 → r3 → the server's r3-side address
//! (the name points there); as soon as its line is out, the test moves the name to the
//! server's r2-side address and r1's default route back to r2, so the second and third
//! rounds go r1 → r2 → server: one route change and one DNS change, both on the second
//! probe. Rounds start 3 s apart and take well under one, and the probe lines themselves
//! are checked for that sequence before anything else. Two hand-written probe lines join
//! them (another agent to the same target, with a hop that did not answer; the same agent
//! to another target; a third agent to that other target only), so the variables have
//! more than one value and the `$agent` and `$target` filters have something to leave
//! out. The lines go through the real `telltale process --input FILE` (`INFLUX_API=v1`)
//! into Debian's `influxd`.
//!
//! Grafana is not run (it cannot be installed here); what it does with the answers is
//! done here as its code does, and only as far as this dashboard uses it: the InfluxQL
//! table format (one frame per query: `Time`, the GROUP BY tag, the columns), the
//! transformations the dashboard names (`convertFieldType`, `calculateField` binary with a
//! fixed operand, `filterByValue`, `sortBy`, `organize`, `merge`; a `filter` by refId), the
//! node graph's choice of frames (refId `nodes`/`edges` or an `id` field; edges are the
//! frames with `source`) and its rule that every edge's source and target is a node (it
//! throws otherwise), and the geomap route layer's need for a location on every row. A
//! transformation this emulation does not know fails the test.
//!
//! Macros: `$timeFilter` is the minute around the probes, `$__interval` `1s` (rounds are
//! 3 s apart, so one probe per interval, as Grafana's 10 s minimum interval gives with the
//! default 30 s between probes), `$target` and `$agent` the values chosen (first
//! the real probes', then the other agent's). With `TELLTALE_NETWORK_PATH_DUMP=FILE` the
//! test writes every panel's data (after the transformations), the annotations and the
//! variables to FILE, which `tests/tools/render_network_path.py` draws.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use telltale_influx::testing::Server;

use crate::grafana_queries::{Series, process, series_of};
use crate::probe::addrs;
use crate::support::netns::Path3;
use crate::support::{BIN, ChildGuard, describe, repo_root};

const DB: &str = "telltale";
const NET: u8 = 213;
const AGENT: &str = "lab-213";
/// The hand-written probes: another agent to the same target, the same agent elsewhere,
/// and an agent that probes only elsewhere.
const OTHER_AGENT: &str = "lab-other";
const OTHER_TARGET: &str = "elsewhere.example";
const ELSEWHERE_AGENT: &str = "lab-elsewhere";
const INTERVAL: &str = "1s";

// --- Grafana's side, as far as this dashboard uses it --------------------------------

/// A data frame: named columns of JSON values (numbers, strings, nulls).
#[derive(Debug, Clone)]
struct Frame {
    ref_id: String,
    fields: Vec<(String, Vec<Value>)>,
}

impl Frame {
    /// What Grafana's InfluxQL backend makes of a `resultFormat: table` answer: one frame,
    /// `Time`, then the series' tags, then its columns; the series' rows one after another.
    fn table(ref_id: &str, series: &[Series]) -> Self {
        let mut fields: Vec<(String, Vec<Value>)> = Vec::new();
        for s in series {
            // Grafana adds the tag columns in Go map order: with two or more GROUP BY tags
            // they land in a different order per series.
            assert!(s.tags.len() <= 1, "{ref_id}: one GROUP BY tag at most");
            let mut cols: Vec<(String, Vec<Value>)> = vec![(
                "Time".into(),
                s.values.iter().map(|r| r[0].clone()).collect(),
            )];
            for (k, v) in &s.tags {
                cols.push((k.clone(), vec![json!(v); s.values.len()]));
            }
            for (i, c) in s.columns.iter().enumerate().skip(1) {
                cols.push((c.clone(), s.values.iter().map(|r| r[i].clone()).collect()));
            }
            if fields.is_empty() {
                fields = cols;
                continue;
            }
            let names = |f: &[(String, Vec<Value>)]| -> Vec<String> {
                f.iter().map(|(n, _)| n.clone()).collect()
            };
            assert_eq!(names(&fields), names(&cols), "{ref_id}: same columns");
            for (f, (_, values)) in fields.iter_mut().zip(cols) {
                f.1.extend(values);
            }
        }
        Self {
            ref_id: ref_id.into(),
            fields,
        }
    }

    fn len(&self) -> usize {
        self.fields.first().map_or(0, |f| f.1.len())
    }

    fn has(&self, name: &str) -> bool {
        self.fields.iter().any(|(n, _)| n == name)
    }

    fn values(&self, name: &str) -> &[Value] {
        &self
            .fields
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{}: no field {name:?} in {:?}", self.ref_id, self.names()))
            .1
    }

    fn names(&self) -> Vec<&str> {
        self.fields.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Text of a column, `-` for null (as a JS template would not).
    fn strings(&self, name: &str) -> Vec<String> {
        self.values(name)
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                Value::Null => "-".into(),
                other => other.to_string(),
            })
            .collect()
    }

    fn numbers(&self, name: &str) -> Vec<f64> {
        self.values(name)
            .iter()
            .map(|v| {
                v.as_f64()
                    .unwrap_or_else(|| panic!("{}: {name} = {v} is not a number", self.ref_id))
            })
            .collect()
    }

    fn keep_rows(&mut self, keep: &[bool]) {
        for (_, values) in &mut self.fields {
            let mut i = 0;
            values.retain(|_| {
                i += 1;
                keep[i - 1]
            });
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "refId": self.ref_id,
            "fields": self.fields.iter().map(|(n, v)| json!({"name": n, "values": v})).collect::<Vec<_>>(),
        })
    }
}

/// JavaScript's `String(v)` of a number: `2`, not `2.0`.
fn js_string(v: &Value) -> Value {
    match v {
        Value::Number(n) => {
            let f = n.as_f64().unwrap();
            if f.fract() == 0.0 && f.abs() < 1e15 {
                json!(format!("{}", f as i64))
            } else {
                json!(f.to_string())
            }
        }
        other => other.clone(),
    }
}

/// Grafana's `filterByValue` matchers used here.
fn value_matches(v: &Value, config: &Value) -> bool {
    let limit = config["options"]["value"].as_f64();
    let n = v.as_f64();
    match config["id"].as_str().unwrap() {
        "isNull" => v.is_null(),
        "isNotNull" => !v.is_null(),
        "lower" => n.zip(limit).is_some_and(|(a, b)| a < b),
        "lowerOrEqual" => n.zip(limit).is_some_and(|(a, b)| a <= b),
        "greater" => n.zip(limit).is_some_and(|(a, b)| a > b),
        "greaterOrEqual" => n.zip(limit).is_some_and(|(a, b)| a >= b),
        other => panic!("filterByValue matcher {other:?} is not emulated here"),
    }
}

/// One transformation applied to the frames it is for (its `filter` by refId, or all).
fn transform(frames: Vec<Frame>, t: &Value) -> Vec<Frame> {
    let id = t["id"].as_str().unwrap();
    let o = &t["options"];
    let only = match &t["filter"] {
        Value::Null => None,
        f => {
            assert_eq!(f["id"], "byRefId", "{t}");
            Some(f["options"].as_str().unwrap().to_owned())
        }
    };
    if id == "merge" {
        assert!(only.is_none(), "{t}");
        // Rows appended under the union of the field names (no two rows here agree on
        // every shared field, the case in which Grafana would fold them into one).
        let mut names: Vec<String> = Vec::new();
        for f in &frames {
            for (n, _) in &f.fields {
                if !names.contains(n) {
                    names.push(n.clone());
                }
            }
        }
        let mut merged = Frame {
            ref_id: frames.first().map(|f| f.ref_id.clone()).unwrap_or_default(),
            fields: names.iter().map(|n| (n.clone(), Vec::new())).collect(),
        };
        for f in &frames {
            for (n, values) in &mut merged.fields {
                if f.has(n) {
                    values.extend(f.values(n).iter().cloned());
                } else {
                    values.extend(std::iter::repeat_n(Value::Null, f.len()));
                }
            }
        }
        return vec![merged];
    }
    frames
        .into_iter()
        .map(|mut f| {
            if only.as_ref().is_some_and(|r| *r != f.ref_id) {
                return f;
            }
            match id {
                "convertFieldType" => {
                    for c in o["conversions"].as_array().unwrap() {
                        let name = c["targetField"].as_str().unwrap();
                        let Some((_, values)) = f.fields.iter_mut().find(|(n, _)| n == name) else {
                            continue;
                        };
                        for v in values.iter_mut() {
                            *v = match c["destinationType"].as_str().unwrap() {
                                "number" => match &*v {
                                    Value::String(s) => {
                                        s.trim().parse::<f64>().map_or(Value::Null, |n| json!(n))
                                    }
                                    other => other.clone(),
                                },
                                "string" => js_string(v),
                                other => panic!("convertFieldType to {other} is not emulated"),
                            };
                        }
                    }
                }
                "calculateField" => {
                    assert_eq!(o["mode"], "binary", "{t}");
                    assert_ne!(o["replaceFields"], true, "{t}");
                    let b = &o["binary"];
                    assert_eq!(b["left"]["matcher"]["id"], "byName", "{t}");
                    let left = b["left"]["matcher"]["options"].as_str().unwrap();
                    let right: f64 = b["right"]["fixed"].as_str().unwrap().parse().unwrap();
                    let out: Vec<Value> = f
                        .values(left)
                        .iter()
                        .map(|v| {
                            let l = v.as_f64().unwrap_or_else(|| {
                                panic!("{t}: {left} = {v} is no number (convert it first)")
                            });
                            json!(match b["operator"].as_str().unwrap() {
                                "+" => l + right,
                                "-" => l - right,
                                "*" => l * right,
                                "/" => l / right,
                                op => panic!("operator {op}"),
                            })
                        })
                        .collect();
                    f.fields
                        .push((o["alias"].as_str().unwrap().to_owned(), out));
                }
                "filterByValue" => {
                    let filters = o["filters"].as_array().unwrap();
                    let all = o["match"] == "all";
                    let include = o["type"] == "include";
                    let keep: Vec<bool> = (0..f.len())
                        .map(|i| {
                            let hits = filters.iter().filter(|flt| {
                                let name = flt["fieldName"].as_str().unwrap();
                                f.has(name) && value_matches(&f.values(name)[i], &flt["config"])
                            });
                            let hit = if all {
                                hits.count() == filters.len()
                            } else {
                                hits.count() > 0
                            };
                            hit == include
                        })
                        .collect();
                    f.keep_rows(&keep);
                }
                "sortBy" => {
                    let s = &o["sort"][0];
                    let name = s["field"].as_str().unwrap();
                    if !f.has(name) {
                        return f; // as Grafana: nothing to sort by
                    }
                    let key = f.values(name).to_vec();
                    let mut order: Vec<usize> = (0..f.len()).collect();
                    order.sort_by(|&a, &b| {
                        let c = match (key[a].as_f64(), key[b].as_f64()) {
                            (Some(x), Some(y)) => x.total_cmp(&y),
                            _ => key[a].to_string().cmp(&key[b].to_string()),
                        };
                        if s["desc"] == true { c.reverse() } else { c }
                    });
                    for (_, values) in &mut f.fields {
                        *values = order.iter().map(|&i| values[i].clone()).collect();
                    }
                }
                "organize" => {
                    let index = o["indexByName"].as_object().unwrap();
                    f.fields.retain(|(n, _)| o["excludeByName"][n] != true);
                    let at = |n: &str| index.get(n).and_then(Value::as_u64).unwrap_or(u64::MAX);
                    f.fields.sort_by_key(|(n, _)| at(n));
                    for (n, _) in &mut f.fields {
                        if let Some(to) = o["renameByName"][n.as_str()].as_str() {
                            *n = to.to_owned();
                        }
                    }
                }
                other => panic!("transformation {other:?} is not emulated here"),
            }
            f
        })
        .collect()
}

/// What the node graph panel draws: `(id, title)` of every node and `(source, target)`
/// ids of every edge.
#[derive(Debug)]
struct Graph {
    nodes: Vec<(String, String)>,
    edges: Vec<(String, String)>,
}

impl Graph {
    /// Grafana's `getNodeGraphDataFrames`, `useCategorizeFrames` and `processNodes`: the
    /// first nodes frame and the first edges frame; an edge to a node that is not there
    /// throws in `processEdges`.
    fn of(frames: &[Frame]) -> Self {
        let graph: Vec<&Frame> = frames
            .iter()
            .filter(|f| f.ref_id == "nodes" || f.ref_id == "edges" || f.has("id"))
            .collect();
        let (edges, nodes): (Vec<&Frame>, Vec<&Frame>) =
            graph.into_iter().partition(|f| f.has("source"));
        let nodes = nodes.first().expect("a nodes frame (no `source` field)");
        let edges = edges.first().expect("an edges frame (a `source` field)");
        // Grafana looks nodes up by JavaScript object key (any id reads as a string) but
        // highlights what hovering a node connects with `edge.source === node.id`: ids,
        // sources and targets must all be strings.
        let key = |v: &Value| {
            v.as_str()
                .unwrap_or_else(|| panic!("node graph ids must be strings: {v}"))
                .to_owned()
        };
        let ids: Vec<String> = nodes.values("id").iter().map(key).collect();
        let titles = nodes.strings("title");
        assert_eq!(edges.values("id").len(), edges.len(), "edges need an id");
        let edges: Vec<(String, String)> = edges
            .values("source")
            .iter()
            .zip(edges.values("target"))
            .map(|(s, t)| (key(s), key(t)))
            .collect();
        for (s, t) in &edges {
            assert!(
                ids.contains(s) && ids.contains(t),
                "edge {s} → {t} to a node that is not there (Grafana throws): nodes {ids:?}"
            );
        }
        Self {
            nodes: ids.into_iter().zip(titles).collect(),
            edges,
        }
    }

    fn title(&self, id: &str) -> &str {
        &self.nodes.iter().find(|(i, _)| i == id).unwrap().1
    }

    /// The edges as `title → title`, sorted (a graph's edges have no order).
    fn links(&self) -> Vec<(String, String)> {
        let mut links: Vec<(String, String)> = self
            .edges
            .iter()
            .map(|(s, t)| (self.title(s).to_owned(), self.title(t).to_owned()))
            .collect();
        links.sort();
        links
    }
}

// --- the dashboard's queries -------------------------------------------------------------

/// A panel's answers: time series as InfluxDB gave them, tables as Grafana's frames after
/// the panel's transformations.
#[derive(Debug, Default)]
struct PanelData {
    series: BTreeMap<String, Vec<Series>>,
    frames: Vec<Frame>,
}

struct Dashboard {
    json: Value,
    server: Server,
    from_ms: i64,
    to_ms: i64,
}

impl Dashboard {
    fn expand(&self, q: &str, target: &str, agent: &str) -> String {
        q.replace(
            "$timeFilter",
            &format!("time >= {}ms and time <= {}ms", self.from_ms, self.to_ms),
        )
        .replace("$__interval", INTERVAL)
        .replace("$target", target)
        .replace("$agent", agent)
    }

    async fn run(&self, q: &str, target: &str, agent: &str) -> Vec<Series> {
        series_of(
            &self
                .server
                .influxql(DB, &self.expand(q, target, agent))
                .await,
        )
    }

    /// Every panel's data for one choice of the variables, by panel title.
    async fn panels(&self, target: &str, agent: &str) -> BTreeMap<String, PanelData> {
        let mut out = BTreeMap::new();
        for p in self.json["panels"].as_array().unwrap() {
            let title = p["title"].as_str().unwrap().to_owned();
            let mut data = PanelData::default();
            for t in p["targets"].as_array().unwrap() {
                let ref_id = t["refId"].as_str().unwrap();
                let series = self.run(t["query"].as_str().unwrap(), target, agent).await;
                match t["resultFormat"].as_str().unwrap() {
                    "table" => data.frames.push(Frame::table(ref_id, &series)),
                    "time_series" => {
                        data.series.insert(ref_id.to_owned(), series);
                    }
                    other => panic!("{title}: resultFormat {other}"),
                }
            }
            for t in p["transformations"].as_array().into_iter().flatten() {
                assert!(
                    data.series.is_empty(),
                    "{title}: transformations on time series are not emulated"
                );
                data.frames = transform(std::mem::take(&mut data.frames), t);
            }
            out.insert(title, data);
        }
        out
    }

    /// Every annotation query's rows, by annotation name.
    async fn annotations(&self, target: &str, agent: &str) -> BTreeMap<String, Vec<Series>> {
        let mut out = BTreeMap::new();
        for a in self.json["annotations"]["list"].as_array().unwrap() {
            if let Some(q) = a["query"].as_str() {
                assert_eq!(a["textColumn"], "text", "{a}");
                assert_eq!(a["target"]["query"].as_str(), Some(q), "one query: {a}");
                out.insert(
                    a["name"].as_str().unwrap().to_owned(),
                    self.run(q, target, agent).await,
                );
            }
        }
        out
    }

    /// The values of each variable, in the dashboard's order (later ones see the earlier
    /// ones' choice, `target` for `agent`).
    async fn variables(&self, target: &str) -> Vec<(String, Vec<String>)> {
        let mut out = Vec::new();
        for v in self.json["templating"]["list"].as_array().unwrap() {
            let series = self
                .run(v["query"].as_str().unwrap(), target, "$agent")
                .await;
            assert_eq!(series.len(), 1, "{v}");
            out.push((
                v["name"].as_str().unwrap().to_owned(),
                series[0].strings("value"),
            ));
        }
        out
    }
}

/// A panel's data by its title.
fn panel<'a>(panels: &'a BTreeMap<String, PanelData>, title: &str) -> &'a PanelData {
    panels
        .get(title)
        .unwrap_or_else(|| panic!("no panel {title:?}; have {:?}", panels.keys()))
}

fn one_frame(data: &PanelData) -> &Frame {
    assert_eq!(data.frames.len(), 1, "{data:?}");
    &data.frames[0]
}

fn series_json(series: &[Series]) -> Value {
    series
        .iter()
        .map(|s| json!({"tags": s.tags, "columns": s.columns, "values": s.values}))
        .collect()
}

fn panels_json(panels: &BTreeMap<String, PanelData>) -> Value {
    panels
        .iter()
        .map(|(title, d)| {
            let series: serde_json::Map<String, Value> = d
                .series
                .iter()
                .map(|(r, s)| (r.clone(), series_json(s)))
                .collect();
            let frames: Vec<Value> = d.frames.iter().map(Frame::to_json).collect();
            (title.clone(), json!({"series": series, "frames": frames}))
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

// --- the probes ---------------------------------------------------------------------------

/// Three rounds of `telltale probe` in the client's namespace; after the first round's
/// line, the target's name and r1's route move from the r3 side to the r2 side.
fn probe_with_a_route_and_dns_change(net: &Path3, target: &str, dbs: (&Path, &Path)) -> Vec<Value> {
    let mut cmd = Command::new("ip");
    for (k, _) in std::env::vars() {
        if k.starts_with("PROBE_") || k.starts_with("GEOIP_") || k.starts_with("TELLTALE_") {
            cmd.env_remove(k);
        }
    }
    let client = net.ns("c");
    cmd.args(["netns", "exec", &client, BIN, "probe", "--target", target])
        .args(["--count", "3", "--echoes", "3", "--echo-interval", "20ms"])
        // Rounds start 3 s apart and each takes well under one: the switch below lands
        // between the first round's line and the second round's start (checked after).
        .args(["--interval", "3s", "--agent", AGENT, "--geoip-city"])
        .arg(dbs.0)
        .arg("--geoip-asn")
        .arg(dbs.1)
        .env("TELLTALE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = ChildGuard::spawn(&mut cmd);
    let stdout = child.stdout.take().unwrap();
    let mut lines: Vec<Value> = Vec::new();
    for line in std::io::BufReader::new(stdout).lines() {
        lines.push(serde_json::from_str(&line.unwrap()).unwrap());
        if lines.len() == 1 {
            net.name_server_at(&net.addr(3, 2));
            net.switch_to_r2();
        }
    }
    let out = child.wait_with_output();
    assert!(out.status.success(), "{}", describe(&out));
    lines
}

/// A probe line's timestamp, epoch milliseconds.
fn line_ms(line: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(line["timestamp"].as_str().unwrap())
        .unwrap()
        .timestamp_millis()
}

/// A hop of a hand-written probe: address (None: did not answer), loss %, RTT ms,
/// location.
type Hop<'a> = (Option<&'a str>, f64, f64, Option<(f64, f64)>);

/// A probe line at `at_ms` from `agent` to `target` over `hops`.
fn hand_written(at_ms: i64, agent: &str, target: &str, hops: &[Hop]) -> Value {
    let hops: Vec<Value> = hops
        .iter()
        .enumerate()
        .map(|(i, (addr, loss, rtt, at))| {
            let mut h = json!({"ttl": i + 1, "addr": addr, "loss_pct": loss, "sent": 10,
                "received": (10.0 * (1.0 - loss / 100.0)) as u64});
            if *loss < 100.0 {
                h["rtt_ms"] = json!(rtt);
                h["best_ms"] = json!(rtt * 0.9);
                h["worst_ms"] = json!(rtt * 1.2);
            }
            if let Some((lat, lon)) = at {
                h["latitude"] = json!(lat);
                h["longitude"] = json!(lon);
            }
            h
        })
        .collect();
    let last = hops.last().unwrap();
    json!({
        "kind": "probe", "timestamp": at_ms, "agent": agent, "target": target,
        "protocol": "icmp", "hop_count": hops.len(), "loss_pct": last["loss_pct"],
        "rtt_ms": last["rtt_ms"], "rtt_median_ms": last["rtt_ms"], "rtt_p95_ms": last["worst_ms"],
        "sent": 10, "received": last["received"], "hops": hops,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_path_dashboard_shows_the_probed_path() {
    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("grafana/dashboards/network-path.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json["uid"], "telltale-network-path");
    assert_eq!(json["title"], "Network path");

    // The network, the databases, the probes.
    let mut net = Path3::build("np", NET);
    net.add_r3();
    net.switch_to_r3();
    net.name_server_at(&net.addr(5, 2));
    let tmp = tempfile::tempdir().unwrap();
    let (city, asn) = crate::support::mmdb::write_test_databases(tmp.path(), NET);
    let target = format!("server.{NET}.test");
    let lines = probe_with_a_route_and_dns_change(&net, &target, (&city, &asn));
    let a = |s: u8, h: u8| net.addr(s, h);
    let (r1, r2, r3, server, server_r3) = (a(1, 1), a(2, 2), a(4, 3), a(3, 2), a(5, 2));
    let routes: Vec<Vec<&str>> = lines.iter().map(addrs).collect();
    assert_eq!(
        routes,
        [
            vec![r1.as_str(), &r3, &server_r3],
            vec![&r1, &r2, &server],
            vec![&r1, &r2, &server]
        ],
        "round 1 through r3 to the name's first address, then through r2 to its second \
         (the switch must land between rounds 1 and 2): {lines:#?}"
    );
    let marked = |k: &str| -> Vec<bool> { lines.iter().map(|l| l.get(k).is_some()).collect() };
    assert_eq!(marked("previous_route_hash"), [false, true, false]);
    assert_eq!(marked("previous_resolved_addr"), [false, true, false]);
    for l in &lines {
        assert_eq!(
            (l["hop_count"].as_u64(), l["loss_pct"].as_f64()),
            (Some(3), Some(0.0)),
            "{l}"
        );
    }
    drop(net);

    // The hand-written lines, and everything through `telltale process` into InfluxDB.
    // The other agent's path has 11 hops, so TTL 10 and 11 sort after 9 only as numbers
    // (InfluxDB orders the GROUP BY "ttl" series as text), and its second hop is silent.
    let far: Vec<String> = (3..=11).map(|i| format!("198.51.100.{i}")).collect();
    let mut far_path: Vec<Hop> = vec![
        (Some("192.0.2.1"), 0.0, 3.0, Some((48.8566, 2.3522))),
        (None, 100.0, 0.0, None),
    ];
    for (i, addr) in far.iter().enumerate() {
        let step = i as f64;
        far_path.push((
            Some(addr),
            0.0,
            10.0 + step,
            Some((40.0 - step, -3.0 - step)),
        ));
    }
    let other_agent = hand_written(line_ms(&lines[1]), OTHER_AGENT, &target, &far_path);
    // The real agent to another target after its last real probe, with a route and a DNS
    // change of its own: later than anything of `$target`, so a query without that filter
    // shows it.
    let mut other_target = hand_written(
        line_ms(&lines[2]) + 1_000,
        AGENT,
        OTHER_TARGET,
        &[
            (Some(r1.as_str()), 0.0, 1.0, None),
            (Some("192.0.2.9"), 50.0, 90.0, None),
        ],
    );
    other_target["previous_route_hash"] = json!("00000000000000aa");
    other_target["resolved_addr"] = json!("192.0.2.9");
    other_target["previous_resolved_addr"] = json!("192.0.2.8");
    // An agent that probes only the other target: not among `$agent`'s values.
    let elsewhere = hand_written(
        line_ms(&lines[1]),
        ELSEWHERE_AGENT,
        OTHER_TARGET,
        &[(Some("192.0.2.77"), 0.0, 5.0, None)],
    );
    let input = tmp.path().join("probes.ndjson");
    let mut text = String::new();
    for l in lines
        .iter()
        .chain([&other_agent, &other_target, &elsewhere])
    {
        text += &format!("{l}\n");
    }
    std::fs::write(&input, text).unwrap();
    let server_db = Server::influxd().await;
    server_db
        .influxql(DB, &format!("CREATE DATABASE \"{DB}\""))
        .await;
    let url = server_db.url();
    let lake = tmp.path().join("lake");
    let services = repo_root().join("config/services.toml");
    let input2 = input.clone();
    tokio::task::spawn_blocking(move || process(&input2, &lake, &services, &url))
        .await
        .unwrap();

    // The probes' times, as InfluxDB holds them; the range is the minute around them.
    let times: Vec<i64> = series_of(
        &server_db
            .influxql(
                DB,
                &format!("SELECT \"hop_count\" FROM \"probe\" WHERE \"agent\" = '{AGENT}' AND \"target\" = '{target}'"),
            )
            .await,
    )
    .first()
    .unwrap_or_else(|| panic!("no probe points in InfluxDB from {}", input.display()))
    .points("hop_count")
    .iter()
    .map(|p| p.0)
    .collect();
    assert_eq!(times.len(), 3, "{times:?}");
    let d = Dashboard {
        json,
        server: server_db,
        from_ms: times[0] - 60_000,
        to_ms: times[2] + 60_000,
    };

    let vars = d.variables(&target).await;
    let panels = d.panels(&target, AGENT).await;
    let annotations = d.annotations(&target, AGENT).await;
    let others = d.panels(&target, OTHER_AGENT).await;
    if let Some(path) = std::env::var_os("TELLTALE_NETWORK_PATH_DUMP") {
        let dump = json!({
            "note": "the network path dashboard's queries and transformations, run by crates/telltale/tests/it/network_path_dashboard.rs on real telltale probe output",
            "target": target, "agent": AGENT, "from_ms": d.from_ms, "to_ms": d.to_ms,
            "variables": vars,
            "panels": panels_json(&panels),
            "annotations": annotations.iter().map(|(n, s)| (n.clone(), series_json(s))).collect::<serde_json::Map<_, _>>(),
        });
        std::fs::write(&path, serde_json::to_string_pretty(&dump).unwrap()).unwrap();
    }

    // Every query answered with data.
    let mut empty = Vec::new();
    for (title, p) in &panels {
        for (r, s) in &p.series {
            if s.iter().all(|s| s.values.is_empty()) {
                empty.push(format!("{title} / {r}"));
            }
        }
        for f in &p.frames {
            if f.len() == 0 {
                empty.push(format!("{title} / {}", f.ref_id));
            }
        }
    }
    for (name, s) in &annotations {
        if s.iter().all(|s| s.values.is_empty()) {
            empty.push(format!("annotation {name}"));
        }
    }
    assert!(empty.is_empty(), "queries that returned nothing: {empty:?}");

    // --- variables
    assert_eq!(
        vars,
        [
            (
                "target".to_owned(),
                vec![OTHER_TARGET.to_owned(), target.clone()]
            ),
            (
                "agent".to_owned(),
                vec![AGENT.to_owned(), OTHER_AGENT.to_owned()]
            ),
        ]
    );

    // --- destination RTT and loss: one probe an interval, its own median and p95
    let rtt = &panel(&panels, "Destination RTT and loss").series;
    let field = |k: &str| -> Vec<f64> { lines.iter().map(|l| l[k].as_f64().unwrap()).collect() };
    let col = |s: &[Series], c: &str| -> Vec<f64> {
        assert_eq!(s.len(), 1, "{s:?}");
        s[0].points(c).iter().map(|p| p.1).collect()
    };
    assert_eq!(
        col(&rtt["A"], "median"),
        field("rtt_median_ms"),
        "RTT median"
    );
    assert_eq!(col(&rtt["A"], "p95"), field("rtt_p95_ms"), "RTT p95");
    let at: Vec<i64> = rtt["A"][0].points("median").iter().map(|p| p.0).collect();
    assert_eq!(at.len(), 3, "three probes, three points: {at:?}");
    assert_eq!(
        col(&rtt["B"], "loss"),
        [0.0, 0.0, 0.0],
        "no loss on the test network"
    );

    // --- hop count
    let hops = &panel(&panels, "Hop count").series["A"];
    assert_eq!(col(hops, "hops"), [3.0, 3.0, 3.0]);

    // --- route table: the last probe's hops in TTL order
    let route = one_frame(panel(&panels, "Route (last probe in the time range)"));
    assert_eq!(
        &route.names()[..8],
        [
            "TTL", "Address", "Name", "ASN", "AS org", "City", "Country", "Loss %"
        ]
    );
    assert_eq!(route.numbers("TTL"), [1.0, 2.0, 3.0]);
    assert_eq!(
        route.strings("Address"),
        [r1.clone(), r2.clone(), server.clone()]
    );
    assert_eq!(
        route.strings("Name"),
        [
            format!("r1.{NET}.test"),
            format!("r2.{NET}.test"),
            target.clone()
        ],
        "reverse DNS from the client's hosts file"
    );
    assert_eq!(
        route.strings("ASN"),
        ["64501", "-", "64503"],
        "ASN from the test .mmdb"
    );
    assert_eq!(
        route.strings("AS org"),
        ["Test Transit 1", "-", "Test Hosting"]
    );
    assert_eq!(
        route.strings("City"),
        ["Frankfurt am Main", "Amsterdam", "London"]
    );
    assert_eq!(route.strings("Country"), ["DE", "NL", "GB"]);
    assert_eq!(route.numbers("Loss %"), [0.0, 0.0, 0.0]);
    assert_eq!(route.numbers("Sent"), [3.0, 3.0, 3.0]);
    assert_eq!(route.numbers("Recv"), [3.0, 3.0, 3.0]);
    let last_hops = lines[2]["hops"].as_array().unwrap();
    let hop_field =
        |k: &str| -> Vec<f64> { last_hops.iter().map(|h| h[k].as_f64().unwrap()).collect() };
    assert_eq!(
        route.numbers("Avg"),
        hop_field("rtt_ms"),
        "the last probe's RTT"
    );
    assert_eq!(route.numbers("Best"), hop_field("best_ms"));
    assert_eq!(route.numbers("Worst"), hop_field("worst_ms"));
    assert_eq!(
        route.numbers("Seen"),
        [times[2] as f64; 3],
        "all from the last probe"
    );

    // --- path graph: TTL 1 → 2 → 3 = r1 → r2 → server
    let graph = Graph::of(&panel(&panels, "Path graph").frames);
    assert_eq!(
        graph.nodes,
        [
            ("1".into(), r1.clone()),
            ("2".into(), r2.clone()),
            ("3".into(), server.clone())
        ]
    );
    assert_eq!(
        graph.links(),
        [(r1.clone(), r2.clone()), (r2.clone(), server.clone())],
        "{graph:?}"
    );
    let nodes = panel(&panels, "Path graph")
        .frames
        .iter()
        .find(|f| f.ref_id == "nodes")
        .unwrap();
    assert_eq!(nodes.numbers("mainstat"), hop_field("rtt_ms"));
    assert_eq!(nodes.numbers("secondarystat"), [0.0; 3]);
    assert_eq!(nodes.numbers("arc__answered"), [1.0; 3]);
    assert_eq!(nodes.numbers("arc__lost"), [0.0; 3]);
    assert_eq!(
        nodes.strings("detail__city"),
        ["Frankfurt am Main", "Amsterdam", "London"]
    );

    // --- hop locations: every row located, in TTL order, for the route line
    let map = one_frame(panel(&panels, "Hop locations"));
    assert_eq!(
        map.strings("addr"),
        [r1.clone(), r2.clone(), server.clone()]
    );
    assert_eq!(map.numbers("latitude"), [50.1109, 52.3676, 51.5072]);
    assert_eq!(map.numbers("longitude"), [8.6821, 4.9041, -0.1276]);

    // --- route and DNS changes: once each, on the second probe
    let one = |name: &str| -> &Series {
        let s = &annotations[name];
        assert_eq!(s.len(), 1, "{name}: {s:?}");
        &s[0]
    };
    let routes = one("Route changes");
    assert_eq!(
        routes.values.len(),
        1,
        "exactly one route change: {routes:?}"
    );
    assert_eq!(routes.values[0][0], times[1], "on the second probe");
    assert_eq!(
        routes.strings("text"),
        [format!("route to {target} changed: {r1} → {r2} → {server}")]
    );
    assert_eq!(
        routes.strings("from"),
        [lines[0]["route_hash"].as_str().unwrap()]
    );
    assert_eq!(
        routes.strings("to"),
        [lines[1]["route_hash"].as_str().unwrap()]
    );
    let dns = one("DNS changes");
    assert_eq!(dns.values.len(), 1, "exactly one DNS change: {dns:?}");
    assert_eq!(dns.values[0][0], times[1]);
    assert_eq!(
        dns.strings("text"),
        [format!(
            "{target} now resolves to {server} (was {server_r3})"
        )]
    );
    let table = one_frame(panel(&panels, "Route and DNS changes"));
    let mut texts = table.strings("text");
    texts.sort();
    let mut expected = vec![
        routes.strings("text")[0].clone(),
        dns.strings("text")[0].clone(),
    ];
    expected.sort();
    assert_eq!(texts, expected, "both changes in the table");

    // --- the other agent: eleven hops in TTL order, the second silent; the map leaves
    // it out
    let route = one_frame(panel(&others, "Route (last probe in the time range)"));
    let ttls: Vec<f64> = (1..=11).map(f64::from).collect();
    assert_eq!(route.numbers("TTL"), ttls, "TTL order, as numbers");
    let mut path: Vec<String> = vec!["192.0.2.1".into(), "*".into()];
    path.extend(far.iter().cloned());
    assert_eq!(route.strings("Address"), path);
    assert_eq!(route.numbers("Loss %")[..3], [0.0, 100.0, 0.0]);
    assert_eq!(
        col(&panel(&others, "Hop count").series["A"], "hops"),
        [11.0]
    );
    let graph = Graph::of(&panel(&others, "Path graph").frames);
    let mut links: Vec<(String, String)> = path
        .windows(2)
        .map(|w| (w[0].clone(), w[1].clone()))
        .collect();
    links.sort();
    assert_eq!(graph.links(), links, "TTL 1 → 2 → … → 11");
    let map = one_frame(panel(&others, "Hop locations"));
    let located: Vec<String> = path.iter().filter(|a| *a != "*").cloned().collect();
    assert_eq!(
        map.strings("addr"),
        located,
        "in TTL order, and a hop without a location is not on the route line"
    );
}
