#!/usr/bin/env python3
"""Draws the panels of the Network path dashboard (grafana/dashboards/network-path.json)
from its own queries' results, for docs/img/network-path.png. This is not Grafana (which
cannot be installed here): it is a rendering of the data the dashboard's queries and
transformations give, as the test crates/telltale/tests/it/network_path_dashboard.rs ran
them on real `telltale probe` output in a real InfluxDB 1.x.

How to run it (as root: the test builds network namespaces):

    pip install matplotlib
    TELLTALE_NETWORK_PATH_DUMP=/tmp/network-path.json \\
        cargo test -p telltale --test it --locked network_path_dashboard
    python3 tests/tools/render_network_path.py /tmp/network-path.json docs/img/network-path.png

The first argument is the JSON the test writes when TELLTALE_NETWORK_PATH_DUMP is set
(every panel's series or frames after the dashboard's transformations, the annotations,
the variables); the second is the PNG to write.
"""

import json
import sys
from datetime import datetime, timezone

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

BG, PANEL, TEXT, GRID, MUTED = "#111217", "#181b1f", "#ccccdc", "#2c3235", "#8e8e9e"
GREEN, YELLOW, RED, BLUE, ORANGE, PURPLE = "#73bf69", "#fade2a", "#f2495c", "#5794f2", "#ff9830", "#b877d9"


def when(ms):
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def frame_columns(frame):
    return {f["name"]: f["values"] for f in frame["fields"]}


def loss_color(v):
    if v is None:
        return MUTED
    return GREEN if v < 1 else YELLOW if v < 10 else RED


def style(ax, title):
    ax.set_facecolor(PANEL)
    ax.set_title(title, color=TEXT, loc="left", fontsize=11, fontweight="bold", pad=8)
    ax.tick_params(colors=MUTED, labelsize=8)
    for s in ax.spines.values():
        s.set_color(GRID)
    ax.grid(color=GRID, linewidth=0.6)


def changes(dump):
    out = []
    for name, color in (("Route changes", ORANGE), ("DNS changes", PURPLE)):
        for s in dump["annotations"].get(name, []):
            i = s["columns"].index("text")
            out += [(when(r[0]), r[i], color) for r in s["values"]]
    return out


def mark_changes(ax, marks):
    for t, _, color in marks:
        ax.axvline(t, color=color, linestyle="--", linewidth=1.2)


def timeseries(ax, dump, marks):
    p = dump["panels"]["Destination RTT and loss"]["series"]
    style(ax, "Destination RTT and loss")
    s = p["A"][0]
    t = [when(r[0]) for r in s["values"]]
    for col, color in (("median", GREEN), ("p95", YELLOW)):
        i = s["columns"].index(col)
        ax.plot(t, [r[i] for r in s["values"]], marker="o", color=color, label=f"RTT {col}")
    ax.set_ylabel("ms", color=MUTED, fontsize=8)
    ax.set_ylim(bottom=0)
    loss = ax.twinx()
    ls = p["B"][0]
    loss.bar([when(r[0]) for r in ls["values"]], [r[1] for r in ls["values"]], width=0.00001, color=RED, alpha=0.6, label="loss")
    loss.set_ylim(0, 100)
    loss.set_ylabel("loss %", color=MUTED, fontsize=8)
    loss.tick_params(colors=MUTED, labelsize=8)
    mark_changes(ax, marks)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = loss.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="upper right", fontsize=8, facecolor=PANEL, labelcolor=TEXT, edgecolor=GRID)


def hop_count(ax, dump, marks):
    s = dump["panels"]["Hop count"]["series"]["A"][0]
    style(ax, "Hop count")
    t = [when(r[0]) for r in s["values"]]
    ax.step(t, [r[1] for r in s["values"]], where="post", color=BLUE, marker="o")
    ax.set_ylim(0, max(r[1] for r in s["values"]) + 1)
    mark_changes(ax, marks)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))


def table(ax, title, frame, columns, formats, widths, color_col=None):
    style(ax, title)
    ax.axis("off")
    cols = frame_columns(frame)
    rows = []
    for i in range(len(next(iter(cols.values())))):
        row = []
        for c in columns:
            v = cols[c][i]
            row.append("-" if v is None else formats.get(c, str)(v))
        rows.append(row)
    total = sum(widths)
    t = ax.table(cellText=rows, colLabels=columns, loc="upper left", cellLoc="left", colLoc="left",
                 colWidths=[w / total for w in widths])
    t.auto_set_font_size(False)
    t.set_fontsize(8)
    t.scale(1, 1.35)
    for (r, c), cell in t.get_celld().items():
        cell.set_edgecolor(GRID)
        cell.set_facecolor(PANEL if r else "#22252b")
        cell.get_text().set_color(TEXT)
        if r and color_col and columns[c] == color_col:
            cell.set_facecolor(loss_color(cols[color_col][r - 1]))
            cell.get_text().set_color("#111111")


def path_graph(ax, dump):
    frames = {f["refId"]: frame_columns(f) for f in dump["panels"]["Path graph"]["frames"]}
    nodes, edges = frames["nodes"], frames["edges"]
    style(ax, "Path graph")
    ax.axis("off")
    pos = {}
    n = len(nodes["id"])
    for i, node_id in enumerate(nodes["id"]):
        pos[node_id] = (i, 0)
    for s, t in zip(edges["source"], edges["target"]):
        (x1, y1), (x2, y2) = pos[s], pos[t]
        ax.annotate("", xy=(x2 - 0.18, y2), xytext=(x1 + 0.18, y1), arrowprops=dict(arrowstyle="->", color=MUTED, lw=1.5))
    for i, node_id in enumerate(nodes["id"]):
        x, y = pos[node_id]
        lost = nodes["arc__lost"][i] or 0
        ax.pie([1 - lost, lost] if lost else [1], colors=[GREEN, RED] if lost else [GREEN], center=(x, y), radius=0.16,
               wedgeprops=dict(width=0.035, edgecolor=PANEL), startangle=90)
        ax.text(x, y + 0.035, f"{nodes['mainstat'][i]:.2f} ms", ha="center", va="center", color=TEXT, fontsize=8)
        ax.text(x, y - 0.045, f"{nodes['secondarystat'][i]:.0f} %", ha="center", va="center", color=MUTED, fontsize=7)
        ax.text(x, y - 0.26, nodes["title"][i], ha="center", color=TEXT, fontsize=8, fontweight="bold")
        ax.text(x, y - 0.36, nodes["subtitle"][i] or "", ha="center", color=MUTED, fontsize=7)
        detail = " ".join(str(v) for v in (nodes["detail__city"][i], f"AS{nodes['detail__asn'][i]}" if nodes["detail__asn"][i] else None) if v)
        ax.text(x, y - 0.45, detail, ha="center", color=MUTED, fontsize=7)
        ax.text(x, y + 0.22, f"TTL {node_id}", ha="center", color=MUTED, fontsize=7)
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_ylim(-0.6, 0.4)
    ax.set_aspect("equal")


def hop_map(ax, dump):
    (frame,) = dump["panels"]["Hop locations"]["frames"]
    c = frame_columns(frame)
    style(ax, "Hop locations (lat/lon; no basemap here)")
    lon, lat = c["longitude"], c["latitude"]
    ax.plot(lon, lat, color=BLUE, linewidth=2, alpha=0.7)
    for i in range(len(lon) - 1):
        ax.annotate("", xy=(lon[i + 1], lat[i + 1]), xytext=(lon[i], lat[i]), arrowprops=dict(arrowstyle="->", color=BLUE, lw=1.5))
    ax.scatter(lon, lat, s=60, c=[loss_color(v) for v in c["loss_pct"]], zorder=3, edgecolors=PANEL)
    for i, addr in enumerate(c["addr"]):
        ax.annotate(f"{addr}\n{c['city'][i]}, {c['country'][i]}", (lon[i], lat[i]), textcoords="offset points", xytext=(6, 6), color=TEXT, fontsize=7)
    ax.set_xlabel("longitude", color=MUTED, fontsize=8)
    ax.set_ylabel("latitude", color=MUTED, fontsize=8)
    ax.margins(0.35)


def main(dump_path, out_path):
    dump = json.load(open(dump_path))
    marks = changes(dump)
    fig = plt.figure(figsize=(16, 13), facecolor=BG)
    grid = fig.add_gridspec(4, 3, height_ratios=[1.0, 0.42, 1.2, 0.3], hspace=0.38, wspace=0.25,
                            left=0.05, right=0.95, top=0.9, bottom=0.04)
    fig.suptitle(f"Network path — target {dump['target']}, agent {dump['agent']}", color=TEXT, fontsize=14, x=0.05, y=0.975, ha="left")
    fig.text(0.05, 0.935, "A rendering of the Network path dashboard's queries' results (its InfluxQL and transformations, run on real "
             "telltale probe output in InfluxDB 1.x by the test network_path_dashboard) — not a Grafana screenshot.",
             color=MUTED, fontsize=9)
    timeseries(fig.add_subplot(grid[0, :2]), dump, marks)
    hop_count(fig.add_subplot(grid[0, 2]), dump, marks)
    (route,) = dump["panels"]["Route (last probe in the time range)"]["frames"]
    ms = lambda v: f"{v:.3f}"  # noqa: E731
    table(fig.add_subplot(grid[1, :]), "Route (last probe in the time range)", route,
          ["TTL", "Address", "Name", "ASN", "AS org", "City", "Country", "Loss %", "Sent", "Recv", "Avg", "Best", "Worst", "Last", "Jitter"],
          {"TTL": lambda v: f"{v:.0f}", "ASN": lambda v: f"{v:.0f}", "Loss %": lambda v: f"{v:.1f}", "Sent": lambda v: f"{v:.0f}",
           "Recv": lambda v: f"{v:.0f}", "Avg": ms, "Best": ms, "Worst": ms, "Last": ms, "Jitter": ms},
          [3, 8, 9, 5, 8, 10, 5, 5, 4, 4, 5, 5, 5, 5, 5], color_col="Loss %")
    path_graph(fig.add_subplot(grid[2, :2]), dump)
    hop_map(fig.add_subplot(grid[2, 2]), dump)
    (chg,) = dump["panels"]["Route and DNS changes"]["frames"]
    table(fig.add_subplot(grid[3, :]), "Route and DNS changes (also the dashboard's annotations: orange route, purple DNS)", chg,
          ["Time", "text", "from", "to"], {"Time": lambda v: when(v).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"},
          [14, 52, 12, 12])
    fig.savefig(out_path, dpi=100, facecolor=BG)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
