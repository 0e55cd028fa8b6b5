"""The side-by-side report: a Markdown table per workload, the targets, and two plots (PNG).

Where a workload ran in several rounds, the table shows the round with the median throughput
and the range over the rounds; the plots use the same median rounds.
"""

from __future__ import annotations

import datetime
import os
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

from tests.bench.harness import CEILING, CONTENDERS, KUBE_SCHEDULER_RAISED, OURS
from tests.bench.planner import machine

if TYPE_CHECKING:
    from tests.bench.cluster import Run

COLOURS = {OURS: "#1f77b4", "kube-scheduler": "#ff7f0e", KUBE_SCHEDULER_RAISED: "#d62728", CEILING: "#7f7f7f"}


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def _median(runs: list[Run]) -> Run:
    """The round with the median throughput (the lower middle one of an even count)."""
    ordered = sorted(runs, key=lambda r: r.rate)
    return ordered[(len(ordered) - 1) // 2]


def medians(runs: list[Run]) -> dict[str, dict[str, Run]]:
    """Workload -> contender -> its median round, in the order the runs came."""
    grouped: dict[str, dict[str, list[Run]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        grouped[r.workload][r.contender].append(r)
    return {w: {c: _median(rs) for c, rs in by.items()} for w, by in grouped.items()}


def _ranges(runs: list[Run]) -> dict[tuple[str, str], tuple[float, float]]:
    spread: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in runs:
        spread[r.workload, r.contender].append(r.rate)
    return {k: (min(v), max(v)) for k, v in spread.items() if len(v) > 1}


def _usage(r: Run) -> tuple[str, str]:
    cpu = f"{r.cpu_seconds:.1f}" if r.cpu_seconds is not None else ""
    rss = f"{r.peak_rss_mb:.0f} MiB" if r.peak_rss_mb is not None else ""
    return cpu, rss


def _table(
    workload: str, rows: dict[str, Run], ranges: dict[tuple[str, str], tuple[float, float]]
) -> list[str]:
    ours = rows.get(OURS)
    ordered = [rows[c] for c in CONTENDERS if c in rows]
    if workload.startswith("idle"):
        lines = [
            "| contender | pods | p50 | p90 | p99 | theirs ÷ ours (p50) | CPU s | peak RSS |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in ordered:
            ratio = f"{r.percentile(0.5) / ours.percentile(0.5):.2f}x" if ours and r is not ours else ""
            cpu, rss = _usage(r)
            lines.append(
                f"| {r.contender} | {r.pods} | {_ms(r.percentile(0.5))} | {_ms(r.percentile(0.9))} | "
                f"{_ms(r.percentile(0.99))} | {ratio} | {cpu} | {rss} |"
            )
        return lines
    if workload.startswith("churn"):
        lines = [
            "| contender | pods | deleted before bound | p50 | p99 | CPU s | CPU per pod | peak RSS |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in ordered:
            cpu, rss = _usage(r)
            per_pod = f"{(r.cpu_seconds or 0) / r.pods * 1000:.1f} ms" if r.cpu_seconds is not None else ""
            lines.append(
                f"| {r.contender} | {r.pods} | {r.unplaced} | {_ms(r.percentile(0.5))} | "
                f"{_ms(r.percentile(0.99))} | {cpu} | {per_pod} | {rss} |"
            )
        return lines
    if workload.startswith("cache"):
        lines = [
            "| contender | pods | seconds until each is bound or has its reason | CPU s | peak RSS |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for r in ordered:
            cpu, rss = _usage(r)
            lines.append(f"| {r.contender} | {r.pods:,} | {r.seconds:.1f} | {cpu} | {rss} |")
        return lines
    lines = [
        "| contender | pods | seconds | pods/s | range | ours ÷ theirs | p50 | p90 | p99 | events in "
        "| CPU s | peak RSS |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in ordered:
        ratio = f"{ours.rate / r.rate:.2f}x" if ours and r.rate and r is not ours else ""
        low_high = ranges.get((workload, r.contender))
        spread = f"{low_high[0]:.0f} to {low_high[1]:.0f}" if low_high else ""
        events = f"+{r.events_after:.1f} s" if r.events_after is not None else ""
        cpu, rss = _usage(r)
        lines.append(
            f"| {r.contender} | {r.pods:,} | {r.seconds:.2f} | {r.rate:.0f} | {spread} | {ratio} | "
            f"{_ms(r.percentile(0.5))} | {_ms(r.percentile(0.9))} | {_ms(r.percentile(0.99))} | "
            f"{events} | {cpu} | {rss} |"
        )
    return lines


def _targets(table: dict[str, dict[str, Run]], *, quick: bool) -> list[str]:
    """Issue 6's targets against these figures."""
    lines = ["### Targets", ""]
    sizes = [w for w in table if w.startswith("throughput")]
    if sizes:
        largest = max(sizes, key=lambda w: int(w.split()[-1].replace(",", "")))
        rows = table[largest]
        ours, ceiling, raised = rows.get(OURS), rows.get(CEILING), rows.get(KUBE_SCHEDULER_RAISED)
        if ours and ceiling and ceiling.rate:
            share = ours.rate / ceiling.rate
            verdict = "met" if share >= 0.8 else "missed"
            lines.append(f"- at least 80% of the ceiling ({largest}): {share:.0%}: {verdict}")
        if ours and raised and raised.rate:
            ratio = ours.rate / raised.rate
            verdict = "met" if ratio >= 1.5 else "missed"
            lines.append(
                f"- at least 1.5x kube-scheduler with its rate raised ({largest}): {ratio:.2f}x: {verdict}"
            )
    idle = next((rows.get(OURS) for w, rows in table.items() if w.startswith("idle")), None)
    if idle:
        p50 = idle.percentile(0.5)
        lines.append(
            f"- idle creation-to-bind p50 under 100 ms: {_ms(p50)}: {'met' if p50 < 0.1 else 'missed'}"
        )
    memory = next(
        ((w, rows[OURS]) for w, rows in table.items() if w.startswith("cache") and OURS in rows), None
    )
    if memory and memory[1].peak_rss_mb is not None:
        workload, rss = memory[0], memory[1].peak_rss_mb
        scale = " (--quick: smaller than the target's 5,000 nodes and 50,000 pods)" if quick else ""
        # Judged in MiB, the unit RSS is counted in; the MB (10^6 bytes) figure is shown beside it.
        lines.append(
            f"- peak RSS under 200 MB with 5,000 nodes and 50,000 pods cached: {rss:.1f} MiB"
            f" ({rss * 2**20 / 1e6:.0f} MB) in {workload}{scale}: {'met' if rss < 200 else 'missed'}"
        )
    lines.append("")
    return lines


def plots(table: dict[str, dict[str, Run]], figures: Path) -> list[Path]:
    """latency-cdf.png (creation to bind, or to Running for the storm) and throughput.png; their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures.mkdir(parents=True, exist_ok=True)
    sizes = sorted(
        (w for w in table if w.startswith("throughput")), key=lambda w: int(w.split()[-1].replace(",", ""))
    )
    panels = ([sizes[-1]] if sizes else []) + [w for w in table if w.startswith(("preemption", "gangs"))]
    written: list[Path] = []
    if not panels:
        return written
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, workload in zip(axes[0], panels, strict=True):
        for contender, r in table[workload].items():
            ordered = sorted(r.latencies)
            ys = [(i + 1) / len(ordered) for i in range(len(ordered))]
            ax.plot(ordered, ys, label=contender, color=COLOURS.get(contender))
        ax.set_title(workload, fontsize=10)
        ax.set_xlabel(
            "seconds from creation to " + ("Running" if workload.startswith("preemption") else "bind")
        )
        ax.set_ylabel("share of pods")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    written.append(figures / "latency-cdf.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    if sizes:
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        nodes = [int(w.split()[-1].replace(",", "")) for w in sizes]
        for contender in CONTENDERS:
            rates = [table[w][contender].rate for w in sizes if contender in table[w]]
            if len(rates) == len(sizes):
                ax.plot(nodes, rates, marker="o", label=contender, color=COLOURS.get(contender))
        ax.set_xscale("log")
        ax.set_xticks(nodes, [f"{n:,}" for n in nodes])
        ax.set_xlabel("nodes (and as many pending pods, created at once)")
        ax.set_ylabel("pods bound per second")
        ax.set_title("throughput against cluster size", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        written.append(figures / "throughput.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    return written


def section(runs: list[Run], *, quick: bool, figures: Path, rounds: int, report: Path) -> str:
    """The Markdown section, a table per workload with ratios to ours, the targets, the plots."""
    table = medians(runs)
    ranges = _ranges(runs)
    how = "`make bench QUICK=1`" if quick else "`make bench`"
    lines = [
        "## Side by side with kube-scheduler",
        "",
        f"{how} on {datetime.date.today().isoformat()}: {machine()}; "
        + (
            f"{rounds} rounds, the median round shown with the range of pods/s over the rounds."
            if rounds > 1
            else "one round."
        ),
        "Every run on a fresh local control plane (kube-apiserver, etcd, controller manager, KWOK) on",
        "this machine, which the scheduler, the API server and the harness share. Times are arrival times",
        "on the harness's own watch; 'events in' is how long after the last bind the last `Scheduled`",
        "event was there; CPU is the scheduler's during the workload, peak RSS its high-water mark.",
        "",
    ]
    for workload, rows in table.items():
        lines += [f"### {workload}", "", *_table(workload, rows, ranges), ""]
    lines += _targets(table, quick=quick)
    for path in plots(table, figures):
        lines += [f"![{path.stem}]({os.path.relpath(path, report.parent)})", ""]
    return "\n".join(lines)
