"""Render bench/run.py JSON results as markdown tables, side by side.

    .venv/bin/python bench/report.py NAME=results.json [NAME=other.json ...]

One column per results file (e.g. ``882ce4b=full.json patched=exp.json``):
the reference limit, every scenario's figures with their ratios, and the
issue-4 targets. Paste the output into bench/RESULTS.md.
"""

import json
import sys


def fmt(value, digits=0):
    """A figure with thousands separators; "n/a" when missing or NaN."""
    if value is None or value != value:
        return "n/a"
    return f"{value:,.{digits}f}"


def r(value, reference):
    if not reference or value is None or value != value:
        return ""
    return f" ({value / reference:.2f}x)"


def rows_for(results):
    ref = results["reference"]
    rows = {}
    rows["reference: requests.Session POSTs/s (N loops)"] = (
        f"{fmt(ref['rate'])} ({ref['processes']} loops)"
    )
    rows["reference: POST round trip p50/p99 ms"] = (
        f"{fmt(ref['rtt_ms']['50'], 2)} / {fmt(ref['rtt_ms']['99'], 2)}"
    )
    rows["reference: client CPU s / 1k POSTs"] = fmt(ref["cpu_per_1k"], 3)
    rows["reference: noise (other processes' share)"] = (
        f"{ref['other_processes_cpu'][1] * 100:.0f}%"
    )
    scenarios = results["scenarios"]

    def delivery(label, res):
        rows[f"{label}: deliveries/s (x limit)"] = (
            f"{fmt(res['deliveries_per_s'])}{r(res['deliveries_per_s'], ref['rate'])}"
            + ("" if res["complete"] else f" INCOMPLETE {res['delivered']}/{res['expected']}")
        )
        lat = res["latency_ms"]
        rows[f"{label}: latency p50/p95/p99 ms"] = (
            f"{fmt(lat['50'])} / {fmt(lat['95'])} / {fmt(lat['99'])}"
        )
        rows[f"{label}: API msgs accepted/s (x limit)"] = (
            f"{fmt(res['api_messages_per_s'])}{r(res['api_messages_per_s'], ref['rate'])}"
        )
        rows[f"{label}: peak worker RSS MB (x ref)"] = (
            f"{fmt(res['peak_rss_mb'].get('worker'), 0)}{r(res['peak_rss_mb'].get('worker'), ref['rss_mb'])}"
        )
        rows[f"{label}: worker CPU s / 1k deliveries (x ref)"] = (
            f"{fmt(res['cpu_per_1k'].get('worker'), 2)}{r(res['cpu_per_1k'].get('worker'), ref['cpu_per_1k'])}"
        )
        rows[f"{label}: noise"] = f"{res['other_processes_cpu'][1] * 100:.0f}%"

    for res in scenarios.get("fanout", []):
        count, subs = res["shape"]
        delivery(f"fan-out {count}x{subs}", res)
    if "latency" in scenarios:
        delivery(f"latency @{scenarios['latency']['target_rate']}/s", scenarios["latency"])
    for phase in scenarios.get("ingest", []):
        label = (
            f"ingest {phase['batch']}-msg posts, workers "
            f"{'paused' if phase['workers_paused'] else 'running'}"
        )
        rows[f"{label}: posts/s ; msgs/s"] = (
            f"{fmt(phase['posts_per_s'])} ; {fmt(phase['messages_per_s'])}"
        )
        rows[f"{label}: API CPU ms / post"] = fmt(phase["cpu_per_1k_posts"].get("api"), 2)
    if "isolation" in scenarios:
        iso = scenarios["isolation"]
        rows["isolation: healthy per-subscriber deliveries/s"] = (
            f"{fmt(iso['per_subscriber_per_s'], 1)} vs {fmt(iso['baseline_per_subscriber_per_s'], 1)}"
        )
        rows["isolation: ratio to all-healthy"] = f"{iso['isolation_ratio'] * 100:.1f}%" + (
            "" if iso["complete"] else " (timeout)"
        )
        rows["isolation: worker CPU s / 1k healthy deliveries"] = fmt(
            iso["cpu_per_1k"].get("worker"), 2
        )
    if "backlog" in scenarios:
        b = scenarios["backlog"]
        rows[f"backlog {b['pending_retries']:,}: worker RSS MB before → after"] = (
            f"{fmt(b['worker_rss_mb_before'], 1)} → {fmt(b['worker_rss_mb_after'], 1)}"
        )
        rows["backlog: scheduler RSS growth MB"] = fmt(b["scheduler_rss_growth_mb"], 1)
    for target in results.get("targets", []):
        rows[f"target: {target['target']} ({target['goal']})"] = (
            f"{'MET' if target['met'] else 'missed'}: {target['figure']}"
        )
    return rows


def main(argv):
    columns = []
    for arg in argv:
        name, _, path = arg.rpartition("=")
        with open(path) as handle:
            columns.append((name or path, rows_for(json.load(handle))))
    keys = []
    for _, rows in columns:
        keys += [k for k in rows if k not in keys]
    print("| figure | " + " | ".join(name for name, _ in columns) + " |")
    print("|---|" + "---|" * len(columns))
    for key in keys:
        print(f"| {key} | " + " | ".join(rows.get(key, "") for _, rows in columns) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
