"""Runs the batch contenders, the parse floor and the streaming load test; writes every raw
measurement to results.json. Called by bench/run.sh (which builds, makes the venv and the
input); bench/report.py turns results.json into the table, the docs section and the chart.

Each measured command is started by this script and reaped with os.wait4, whose rusage
gives the command's user and system CPU seconds and its peak resident set (ru_maxrss: the
largest of the process and the descendants it waited for).
"""

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def log(msg):
    print(f"[{dt.datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)


def fail(msg):
    log(f"FAILED: {msg}")
    sys.exit(1)


def measure(cmd, log_prefix, env=None):
    """Runs cmd to its end; returns wall/user/sys seconds, peak RSS and the exit status.
    stdout and stderr go to log_prefix.out / .err."""
    with open(log_prefix + ".out", "wb") as out, open(log_prefix + ".err", "wb") as err:
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=REPO)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.monotonic() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
    return {
        "wall_s": wall,
        "user_s": ru.ru_utime,
        "sys_s": ru.ru_stime,
        "peak_rss_bytes": ru.ru_maxrss * 1024,
        "exit_code": p.returncode,
    }


def tail(path, n=20):
    try:
        with open(path, "rb") as f:
            return b"".join(f.readlines()[-n:]).decode(errors="replace")
    except OSError:
        return ""


def parquet_bytes(root):
    total = 0
    for d, _, files in os.walk(root):
        for f in files:
            if f.endswith(".parquet"):
                total += os.path.getsize(os.path.join(d, f))
    return total


def pin(cmd, cpus):
    return (["taskset", "-c", cpus] + cmd) if cpus else cmd


# --- the contenders -----------------------------------------------------------------


def contender_cmd(name, a, out):
    if name == "telltale":
        return [a.bin, "--log", "warn", "process", "--input", a.input, "--data-dir", out]
    script = os.path.join(HERE, "peers", f"{name}_job.py")
    return [sys.executable, script, "--input", a.input, "--out", out,
            "--services", a.services, "--threads", str(a.threads)]


def output_globs(name, out):
    """(events glob, rollups glob) of a contender's output."""
    if name == "telltale":
        return (f"{out}/events/**/*.parquet", f"{out}/rollups/**/*.parquet")
    return (f"{out}/events/**/*.parquet", f"{out}/rollups.parquet")


def verify(name, out, events, reference_rollups):
    """Checks a contender's output: every input event in the lake once (row count), the
    rollups cover every event, and each (service, 10 s window)'s count, errors and slow
    agree with telltale's. Returns facts for results.json; exits on a mismatch."""
    import duckdb

    ev_glob, ro_glob = output_globs(name, out)
    con = duckdb.connect()
    con.execute("SET threads = 2")
    con.execute("SET TimeZone = 'UTC'")
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{ev_glob}')").fetchone()[0]
    flags = con.execute(
        f"SELECT count_if(is_error), count_if(is_slow), count(DISTINCT service) "
        f"FROM read_parquet('{ev_glob}', hive_partitioning = true)"
    ).fetchone()
    ro = con.execute(
        f"SELECT service, epoch(window_start)::BIGINT AS w, count, errors, slow, "
        f"latency_p50_ms, latency_p95_ms, latency_p99_ms "
        f"FROM read_parquet('{ro_glob}', hive_partitioning = true)"
    ).fetchall()
    facts = {
        "event_rows": rows,
        "errors": flags[0],
        "slow": flags[1],
        "services": flags[2],
        "rollup_rows": len(ro),
        "rollup_events": sum(r[2] for r in ro),
    }
    if rows != events:
        fail(f"{name}: the lake holds {rows} event rows, the input {events} events ({out})")
    if facts["rollup_events"] != events:
        fail(f"{name}: the rollups count {facts['rollup_events']} events, the input {events}")
    if reference_rollups is not None and name != "telltale":
        ref = {(r[0], r[1]): r for r in reference_rollups}
        mine = {(r[0], r[1]): r for r in ro}
        if ref.keys() != mine.keys():
            fail(f"{name}: rollup windows differ from telltale's "
                 f"({len(mine.keys() - ref.keys())} extra, {len(ref.keys() - mine.keys())} missing)")
        bad = [k for k in ref if ref[k][2:5] != mine[k][2:5]]
        if bad:
            k = bad[0]
            fail(f"{name}: {len(bad)} rollup windows differ from telltale's in count/errors/slow, "
                 f"e.g. {k}: telltale {ref[k][2:5]}, {name} {mine[k][2:5]}")
        # Percentiles: telltale's come from an HDR histogram (3 significant digits, its
        # own rank rule), the peers' are exact with linear interpolation; report the gap.
        for i, q in ((5, "p50"), (6, "p95"), (7, "p99")):
            diffs = sorted(abs(mine[k][i] - ref[k][i]) / ref[k][i] for k in ref if ref[k][i] > 0)
            facts[f"{q}_rel_diff_vs_telltale_median"] = statistics.median(diffs) if diffs else None
            facts[f"{q}_rel_diff_vs_telltale_max"] = diffs[-1] if diffs else None
    facts["_rollups"] = ro
    return facts


def run_batch(a, events, results):
    runs = results["batch"]["runs"]
    reference = None
    for r in range(a.runs):
        round_outs = []
        for name in a.contenders:
            out = os.path.join(a.work, "out", f"{name}-{r + 1}")
            shutil.rmtree(out, ignore_errors=True)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            os.sync()
            env = dict(os.environ)
            if name == "polars":
                env["POLARS_MAX_THREADS"] = str(a.threads)
            logp = os.path.join(a.work, "logs", f"{name}-{r + 1}")
            m = measure(pin(contender_cmd(name, a, out), a.cpus), logp, env)
            if m["exit_code"] != 0:
                fail(f"{name} run {r + 1} exited {m['exit_code']}; {logp}.err:\n{tail(logp + '.err')}")
            m.update(contender=name, run=r + 1, output_bytes=parquet_bytes(out))
            if name == "telltale":
                # "processed N bytes: A accepted, R rejected → DIR" (stderr, in this build)
                summary = open(logp + ".out").read() + open(logp + ".err").read()
                mm = re.search(r"processed \d+ bytes: (\d+) accepted, (\d+) rejected", summary)
                if not mm or int(mm.group(1)) != events or int(mm.group(2)) != 0:
                    fail(f"telltale run {r + 1}: expected {events} accepted, 0 rejected; got: "
                         f"{mm.group(0) if mm else 'no summary line'} (in {logp}.out/.err)")
            if a.verify == "all" or (a.verify == "first" and r == 0):
                facts = verify(name, out, events, reference)
                ro = facts.pop("_rollups")
                if name == "telltale" and reference is None:
                    reference = ro
                m["verified"] = facts
            runs.append(m)
            log(f"batch {r + 1}/{a.runs} {name:<8} {m['wall_s']:7.2f} s  "
                f"{events / m['wall_s']:12,.0f} events/s  peak RSS {m['peak_rss_bytes'] / 2**20:7.0f} MiB  "
                f"CPU {(m['user_s'] + m['sys_s']) / m['wall_s']:.2f} cores"
                + ("  verified" if "verified" in m else ""))
            round_outs.append(out)
        if not a.keep_outputs:
            for out in round_outs:
                shutil.rmtree(out, ignore_errors=True)


def run_floor(a, lines, results):
    samples = []
    for i in range(3):
        logp = os.path.join(a.work, "logs", f"floor-{i + 1}")
        m = measure(pin([a.floor_bin, a.input], a.cpus), logp)
        if m["exit_code"] != 0:
            fail(f"parse_floor exited {m['exit_code']}; {logp}.err:\n{tail(logp + '.err')}")
        try:
            out = json.loads(open(logp + ".out").read().strip().splitlines()[-1])
        except (ValueError, IndexError) as e:
            fail(f"parse_floor printed no JSON object ({e}); {logp}.out:\n{tail(logp + '.out')}")
        if out.get("lines") != lines:
            fail(f"parse_floor counted {out.get('lines')} lines, the input has {lines}")
        out["wall_s"] = m["wall_s"]
        samples.append(out)
        log(f"floor {i + 1}/3: split {out['split_secs']:.2f} s, parse {out['parse_secs']:.2f} s "
            f"({lines / out['parse_secs']:,.0f} lines/s on one core)")
    results["floor"] = {
        "runs": samples,
        "split_secs_median": statistics.median(s["split_secs"] for s in samples),
        "parse_secs_median": statistics.median(s["parse_secs"] for s in samples),
    }


# --- streaming ----------------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vm_hwm_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


def run_streaming(a, results):
    port = a.port or free_port()
    lake = os.path.join(a.work, "stream", "lake")
    shutil.rmtree(os.path.dirname(lake), ignore_errors=True)
    os.makedirs(lake)
    logs = os.path.join(a.work, "logs")
    report = os.path.join(a.work, "stream", "loadtest.json")
    url = f"http://127.0.0.1:{port}"
    srv_cmd = pin([a.bin, "--log", "warn", "process", "--listen", f"127.0.0.1:{port}",
                   "--data-dir", lake], a.cpus)
    with open(os.path.join(logs, "stream-server.out"), "wb") as o, \
            open(os.path.join(logs, "stream-server.err"), "wb") as e:
        srv = subprocess.Popen(srv_cmd, stdout=o, stderr=e, cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        while True:
            if srv.poll() is not None:
                fail(f"the server exited {srv.returncode} before /healthz answered:\n"
                     f"{tail(os.path.join(logs, 'stream-server.err'))}")
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                fail("the server did not answer /healthz within 60 s")
            time.sleep(0.2)
        log(f"streaming: server up on {url} (pid {srv.pid}); loadtest {a.stream_connections} "
            f"connections x {a.stream_duration}")
        lt_cmd = [a.bin, "loadtest", "--url", url, "--connections", str(a.stream_connections),
                  "--duration", a.stream_duration, "--data-dir", lake, "--json", report]
        lt = measure(lt_cmd, os.path.join(logs, "stream-loadtest"))
        hwm = vm_hwm_bytes(srv.pid)
        import psutil

        cpu = psutil.Process(srv.pid).cpu_times()
        srv_cpu = cpu.user + cpu.system
    finally:
        if srv.poll() is None:
            srv.send_signal(signal.SIGTERM)
            try:
                srv.wait(timeout=90)
            except subprocess.TimeoutExpired:
                srv.kill()
                srv.wait()
                log("streaming: the server did not exit within 90 s of SIGTERM; killed")
    if not os.path.exists(report):
        fail(f"loadtest wrote no report (exit {lt['exit_code']}):\n{tail(os.path.join(logs, 'stream-loadtest.err'))}")
    rep = json.load(open(report))
    st = rep["steady"]
    results["streaming"] = {
        "connections": st["connections"],
        "batch_lines": st["batch_lines"],
        "duration_s": st["elapsed_s"],
        "requests": st["requests"],
        "status_2xx": st["status_2xx"],
        "refused_or_failed": st["status_4xx"] + st["status_429"] + st["status_5xx"] + st["transport_errors"],
        "events_acknowledged": st["events_acknowledged"],
        "sustained_events_per_s": st["sustained_events_per_s"],
        "peak_events_per_s": st["peak_events_per_s"],
        "ack_latency_ms": st["latency_ms"],
        "server_peak_rss_bytes": hwm,
        "server_cpu_s": srv_cpu,
        "server_exit_code": srv.returncode,
        "loadtest_exit_code": lt["exit_code"],
        "invalid_data": rep.get("invalid_data"),
        "unexpected_answers": rep.get("unexpected_answers"),
        "verification": rep.get("verification"),
    }
    s = results["streaming"]
    log(f"streaming: {s['sustained_events_per_s']:,.0f} events/s sustained, ack p50/p99 "
        f"{s['ack_latency_ms']['p50']:.1f}/{s['ack_latency_ms']['p99']:.1f} ms, server peak RSS "
        f"{(hwm or 0) / 2**20:.0f} MiB, server exit {srv.returncode}")
    if lt["exit_code"] != 0 or rep.get("invalid_data") or rep.get("unexpected_answers"):
        fail(f"loadtest found a problem (exit {lt['exit_code']}, invalid_data "
             f"{rep.get('invalid_data')}, unexpected_answers {rep.get('unexpected_answers')}); "
             f"see {os.path.join(logs, 'stream-loadtest.out')}")
    if srv.returncode != 0:
        fail(f"the server exited {srv.returncode} after SIGTERM")
    if not a.keep_outputs:
        shutil.rmtree(lake, ignore_errors=True)


# --- the machine --------------------------------------------------------------------


def sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def machine(a):
    lscpu = sh(["lscpu"]) or ""
    model = next((l.split(":", 1)[1].strip() for l in lscpu.splitlines()
                  if l.startswith("Model name")), platform.processor() or "unknown")
    mem_kb = None
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    import duckdb
    import importlib.metadata as md

    def ver(p):
        try:
            return md.version(p)
        except md.PackageNotFoundError:
            return None

    return {
        "cpu_model": model,
        "cpus_online": os.cpu_count(),
        "cpus_used": a.cpus or "all",
        "mem_total_bytes": mem_kb * 1024 if mem_kb else None,
        "kernel": platform.release(),
        "os": sh(["sh", "-c", ". /etc/os-release && echo \"$PRETTY_NAME\""]),
        "rustc": sh(["rustc", "--version"]),
        "telltale": sh([a.bin, "--version"]),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "polars": ver("polars"),
        "load_average_at_start": os.getloadavg(),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin", required=True, help="telltale binary")
    ap.add_argument("--floor-bin", default="", help="parse_floor binary ('' skips the floor)")
    ap.add_argument("--input", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--services", default="config/services.toml")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--contenders", default="telltale,duckdb,polars")
    ap.add_argument("--cpus", default="", help="taskset CPU list for every contender ('' = no pinning)")
    ap.add_argument("--threads", type=int, default=2, help="threads for DuckDB and Polars")
    ap.add_argument("--verify", choices=["first", "all", "none"], default="first")
    ap.add_argument("--keep-outputs", action="store_true")
    ap.add_argument("--streaming", type=int, default=1)
    ap.add_argument("--stream-duration", default="30s")
    ap.add_argument("--stream-connections", type=int, default=8)
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    a.input = os.path.abspath(a.input)
    a.work = os.path.abspath(a.work)
    a.bin = os.path.abspath(a.bin)
    a.contenders = [c.strip() for c in a.contenders.split(",") if c.strip()]
    for c in a.contenders:
        if c not in ("telltale", "duckdb", "polars"):
            fail(f"unknown contender {c!r} (telltale, duckdb, polars)")
    os.makedirs(os.path.join(a.work, "logs"), exist_ok=True)

    # The input: lines, bytes, and no probe lines (the peers only model service events).
    size = os.path.getsize(a.input)
    lines = probes = 0
    with open(a.input, "rb") as f:
        while chunk := f.read(1 << 24):
            lines += chunk.count(b"\n")
            probes += chunk.count(b'"kind":"probe"')
    if probes:
        fail(f"the input has {probes} probe lines; the peers do not model probes: generate it without --probe-target")
    log(f"input: {lines:,} events, {size:,} bytes ({size / max(lines, 1):.0f} bytes/line); "
        f"read once so every contender starts from the page cache")

    results = {
        "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(a),
        "input": {"path": a.input, "lines": lines, "events": lines, "bytes": size},
        "settings": {
            "runs": a.runs, "contenders": a.contenders, "cpus": a.cpus, "peer_threads": a.threads,
            "verify": a.verify, "order": "alternating, one run of each contender per round",
        },
        "batch": {"runs": []},
        "floor": None,
        "streaming": None,
    }
    out_path = os.path.join(a.work, "results.json")

    def save():
        tmp = out_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(results, f, indent=2)
        os.replace(tmp, out_path)

    run_batch(a, lines, results)
    save()
    if a.floor_bin:
        run_floor(a, lines, results)
        save()
    else:
        log("floor: skipped (no parse_floor binary)")
    if a.streaming:
        run_streaming(a, results)
    else:
        log("streaming: skipped (STREAMING=0)")
    results["finished_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    save()
    log(f"wrote {out_path}")


if __name__ == "__main__":
    main()
