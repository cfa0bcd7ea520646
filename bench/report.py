"""The results as JSON, a Markdown table, and a chart of Courtyard's ratios.

Every ratio is taken per round, from that round's repetitions only (`bench.run` measures
the apps in alternating rounds), and reported as its median over the rounds with its
spread: min-max, the interquartile range and every round's value. The targets are judged
on the medians.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from bench.config import APPS

OTHERS = ("reference", "floor")
LABELS = {"reference": "CY/ref", "floor": "CY/floor", "bare_argon2": "CY/bare argon2"}


def spread(values: list[float]) -> dict[str, float]:
    """Median, min, max and quartiles of `values` (inclusive quartiles: within min-max)."""
    ordered = sorted(values)
    q1 = q3 = ordered[0]
    if len(ordered) > 1:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    return {
        "median": statistics.median(ordered),
        "min": ordered[0],
        "max": ordered[-1],
        "q1": q1,
        "q3": q3,
    }


def round_ratios(by_app: dict[str, dict[str, Any]]) -> dict[str, list[float]]:
    """Courtyard's ratios per round: its requests/s over the reference's and the floor's in
    the same round and, for login, each of its repetitions over the adjacent bare argon2
    rate. Only those whose apps were measured."""
    if "courtyard" not in by_app:
        return {}
    courtyard = by_app["courtyard"]["runs"]
    out: dict[str, list[float]] = {}
    for other in OTHERS:
        if other in by_app:
            out[other] = [
                mine["rps"] / theirs["rps"] if theirs["rps"] else float("nan")
                for mine, theirs in zip(courtyard, by_app[other]["runs"], strict=True)
            ]
    if courtyard and "over_bare_argon2" in courtyard[0]:
        out["bare_argon2"] = [run["over_bare_argon2"] for run in courtyard]
    return out


def ratios(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Courtyard's requests/s over the reference's and the floor's, per scenario: the median
    over the rounds of each round's ratio."""
    return {
        scenario: {other: by_key[other]["median"] for other in OTHERS}
        for scenario, by_key in results["ratio_spread"].items()
    }


def _span(s: dict[str, float]) -> str:
    return f"{s['min']:.2f}-{s['max']:.2f}"


def _rounds(values: list[float], threshold: float) -> str:
    """The spread of `values` and how many rounds fell below `threshold`."""
    text = f"rounds {_span(spread(values))}x"
    below = sum(v < threshold for v in values)
    return text + (f", {below} of {len(values)} below {threshold}x" if below else "")


def targets(results: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """(target, met, the figure) for every target of the issue, judged on the medians."""
    r = results["ratios"]
    per_round = results["ratio_rounds"]
    scenarios = results["scenarios"]
    # login vs adjacent bare argon2 is reported beside the table; as a target it is retired
    # (on one CPU even the floor reaches only about 0.8x).
    login_floor = r["auth_login"]["floor"]
    startup = results["startup"]["with_50_plugins_s"]
    errors = sum(s[a]["errors"] for s in scenarios.values() for a in APPS)
    slowest = min(r, key=lambda name: r[name]["reference"])
    worst = r[slowest]["reference"]
    behind = [
        f"{name} {sum(v < 1.0 for v in by_key['reference'])}/{len(by_key['reference'])}"
        for name, by_key in per_round.items()
        if any(v < 1.0 for v in by_key["reference"])
    ]
    every = (
        f"worst {worst:.2f}x ({slowest}, rounds {_span(spread(per_round[slowest]['reference']))}x)"
    )
    if behind:
        every += "; rounds below 1.0x: " + ", ".join(behind)
    me = r["users_me"]["floor"]
    return [
        ("Courtyard >= 1.0x the reference on every scenario", worst >= 1.0, every),
        (
            "GET /users/me >= 0.5x the floor (aim)",
            me >= 0.5,
            f"{me:.2f}x ({_rounds(per_round['users_me']['floor'], 0.5)})",
        ),
        (
            "login >= 1.0x the floor (aim)",
            login_floor >= 1.0,
            f"{login_floor:.2f}x ({_rounds(per_round['auth_login']['floor'], 1.0)})",
        ),
        ("startup with 50 plugins < 2 s", startup < 2.0, f"{startup:.2f} s"),
        ("zero errors", errors == 0, f"{errors} errors"),
    ]


def markdown(results: dict[str, Any]) -> str:
    rounds = results["rounds"]
    took = f"; took {results['elapsed_s'] / 60:.1f} min" if "elapsed_s" in results else ""
    lines = [
        f"Run: {results['started']} ({'quick' if results['quick'] else 'full'}: "
        f"{rounds} rounds, each app {results['duration_s']:.0f} s per round in turn "
        f"({', '.join(results['order'])}) after a {results['warmup_s']:.0f} s warm-up each{took})",
        "",
        "req/s, p50, p99: medians of the app's repetitions. CY/ref, CY/floor: Courtyard's "
        "req/s over the other app's in the same round; the median over the rounds "
        "(min-max in brackets).",
        "",
        "| scenario | app | req/s | p50 ms | p99 ms | errors | RSS MiB | CY/ref | CY/floor |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for scenario, by_app in results["scenarios"].items():
        spreads = results["ratio_spread"][scenario]
        for app in APPS:
            row = by_app[app]
            first = app == "courtyard"
            cells = " | ".join(
                f"{spreads[other]['median']:.2f}x ({_span(spreads[other])})" for other in OTHERS
            )
            lines.append(
                f"| {scenario if first else ''} | {app} | {row['rps']:.0f} | {row['p50_ms']:.1f}"
                f" | {row['p99_ms']:.1f} | {row['errors']} | {row['rss_mib']:.0f} | "
                + (f"{cells} |" if first else " | |")
            )
    lines += [
        "",
        f"Spread of Courtyard's ratios over the {rounds} rounds:",
        "",
        "| scenario | ratio | median | min-max | IQR | per round |",
        "|---|---|---:|---:|---:|---|",
    ]
    for scenario, by_key in results["ratio_rounds"].items():
        for key, values in by_key.items():
            s = results["ratio_spread"][scenario][key]
            lines.append(
                f"| {scenario} | {LABELS[key]} | {s['median']:.2f}x | {_span(s)} | "
                f"{s['q1']:.2f}-{s['q3']:.2f} | {', '.join(f'{v:.2f}' for v in values)} |"
            )
    startup = results["startup"]
    login = results["scenarios"]["auth_login"]
    bare = results["bare_argon2_samples"]

    def over_bare(app: str) -> str:
        s = spread([run["over_bare_argon2"] for run in login[app]["runs"]])
        return f"{app} {s['median']:.2f} ({_span(s)})"

    lines += [
        "",
        f"Bare argon2id verification at the configured parameters: "
        f"{results['argon2_hashes_per_s']:.1f}/s on one CPU (median; {min(bare):.1f}-"
        f"{max(bare):.1f}/s, measured before each login repetition and after the last).",
        "login / adjacent bare argon2 (median over the rounds, min-max): "
        + ", ".join(over_bare(app) for app in APPS)
        + ".",
        f"Startup to the first 200: {startup['builtin_plugins_s']:.2f} s with the built-in "
        f"plugins, {startup['with_50_plugins_s']:.2f} s with 50 generated plugins more.",
        "RSS after warm-up (health_live): "
        + ", ".join(
            f"{app} {results['scenarios']['health_live'][app]['rss_mib']:.0f} MiB" for app in APPS
        )
        + ".",
        "",
        "| target | met | measured (median over the rounds) |",
        "|---|---|---|",
    ]
    lines += [
        f"| {name} | {'yes' if ok else 'NO'} | {figure} |" for name, ok, figure in targets(results)
    ]
    return "\n".join(lines) + "\n"


def chart(results: dict[str, Any], target: Path) -> None:
    """Bars of Courtyard / reference and Courtyard / floor per scenario (matplotlib): the
    median over the rounds, whiskers from the lowest round to the highest, a dot per round."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results["ratios"])
    x = range(len(names))
    figure, axes = plt.subplots(figsize=(9, 4.5))
    for offset, other in ((-0.2, "reference"), (0.2, "floor")):
        spreads = [results["ratio_spread"][n][other] for n in names]
        medians = [s["median"] for s in spreads]
        whiskers = [
            [s["median"] - s["min"] for s in spreads],
            [s["max"] - s["median"] for s in spreads],
        ]
        positions = [i + offset for i in x]
        axes.bar(positions, medians, width=0.4, label=f"Courtyard / {other}")
        axes.errorbar(positions, medians, yerr=whiskers, fmt="none", ecolor="black", capsize=3)
        for position, name in zip(positions, names, strict=True):
            values = results["ratio_rounds"][name][other]
            axes.plot([position + 0.1] * len(values), values, "o", color="black", markersize=2.5)
    axes.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    axes.set_xticks(list(x), names, rotation=20, ha="right")
    axes.set_ylabel("requests/s ratio")
    axes.set_title(
        "Courtyard relative to the reference and the floor (higher is better)\n"
        f"median of {results['rounds']} alternating rounds; whiskers min-max, dots each round",
        fontsize=10,
    )
    axes.legend()
    figure.tight_layout()
    figure.savefig(target, dpi=110)
    plt.close(figure)


def write(results: dict[str, Any], folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    results["ratio_rounds"] = {
        scenario: round_ratios(by_app) for scenario, by_app in results["scenarios"].items()
    }
    results["ratio_spread"] = {
        scenario: {key: spread(values) for key, values in by_key.items()}
        for scenario, by_key in results["ratio_rounds"].items()
    }
    results["ratios"] = ratios(results)
    table = markdown(results)
    (folder / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (folder / "results.md").write_text("# Bench results\n\n" + table)
    chart(results, folder / "ratios.png")
    return table
