"""The results as JSON, a Markdown table, and a chart of Courtyard's ratios."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.config import APPS


def ratios(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Courtyard's requests/s over the reference's and the floor's, per scenario."""
    out: dict[str, dict[str, float]] = {}
    for scenario, by_app in results["scenarios"].items():
        courtyard = by_app["courtyard"]["rps"]
        out[scenario] = {
            other: courtyard / by_app[other]["rps"] if by_app[other]["rps"] else float("nan")
            for other in ("reference", "floor")
        }
    return out


def targets(results: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """(target, met, the figure) for every target of the issue."""
    r = results["ratios"]
    scenarios = results["scenarios"]
    # Median over Courtyard's repetitions of each one's rate over its adjacent bare rate.
    login = scenarios["auth_login"]["courtyard"]["over_bare_argon2"]
    startup = results["startup"]["with_50_plugins_s"]
    errors = sum(s[a]["errors"] for s in scenarios.values() for a in APPS)
    worst = min(r.values(), key=lambda v: v["reference"])["reference"]
    return [
        ("Courtyard >= 1.0x the reference on every scenario", worst >= 1.0, f"worst {worst:.2f}x"),
        (
            "GET /users/me >= 0.4x the floor",
            r["users_me"]["floor"] >= 0.4,
            f"{r['users_me']['floor']:.2f}x",
        ),
        ("login >= 0.9x adjacent bare argon2", login >= 0.9, f"{login:.2f}x"),
        ("startup with 50 plugins < 2 s", startup < 2.0, f"{startup:.2f} s"),
        ("zero errors", errors == 0, f"{errors} errors"),
    ]


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"Run: {results['started']} ({'quick' if results['quick'] else 'full'}: "
        f"{results['repetitions']} x {results['duration_s']:.0f} s after "
        f"{results['warmup_s']:.0f} s warm-up, medians)",
        "",
        "| scenario | app | req/s | p50 ms | p99 ms | errors | RSS MiB | CY/ref | CY/floor |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for scenario, by_app in results["scenarios"].items():
        ratio = results["ratios"][scenario]
        for app in APPS:
            row = by_app[app]
            first = app == "courtyard"
            lines.append(
                f"| {scenario if first else ''} | {app} | {row['rps']:.0f} | {row['p50_ms']:.1f}"
                f" | {row['p99_ms']:.1f} | {row['errors']} | {row['rss_mib']:.0f} | "
                + (f"{ratio['reference']:.2f}x | {ratio['floor']:.2f}x |" if first else " | |")
            )
    startup = results["startup"]
    login = results["scenarios"]["auth_login"]
    bare = [b for app in APPS for b in login[app]["bare_argon2_samples"]]
    lines += [
        "",
        f"Bare argon2id verification at the configured parameters: "
        f"{results['argon2_hashes_per_s']:.1f}/s on one CPU (median; {min(bare):.1f}-"
        f"{max(bare):.1f}/s, measured before each login repetition and after the last).",
        "login / adjacent bare argon2: "
        + ", ".join(f"{app} {login[app]['over_bare_argon2']:.2f}" for app in APPS)
        + ".",
        f"Startup to the first 200: {startup['builtin_plugins_s']:.2f} s with the built-in "
        f"plugins, {startup['with_50_plugins_s']:.2f} s with 50 generated plugins more.",
        "RSS after warm-up (health_live): "
        + ", ".join(
            f"{app} {results['scenarios']['health_live'][app]['rss_mib']:.0f} MiB" for app in APPS
        )
        + ".",
        "",
        "| target | met | measured |",
        "|---|---|---|",
    ]
    lines += [
        f"| {name} | {'yes' if ok else 'NO'} | {figure} |" for name, ok, figure in targets(results)
    ]
    return "\n".join(lines) + "\n"


def chart(results: dict[str, Any], target: Path) -> None:
    """Bars of Courtyard / reference and Courtyard / floor per scenario (matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results["ratios"])
    x = range(len(names))
    figure, axes = plt.subplots(figsize=(9, 4.5))
    for offset, other in ((-0.2, "reference"), (0.2, "floor")):
        values = [results["ratios"][n][other] for n in names]
        axes.bar([i + offset for i in x], values, width=0.4, label=f"Courtyard / {other}")
    axes.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    axes.set_xticks(list(x), names, rotation=20, ha="right")
    axes.set_ylabel("requests/s ratio")
    axes.set_title("Courtyard relative to the reference and the floor (higher is better)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(target, dpi=110)
    plt.close(figure)


def write(results: dict[str, Any], folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    results["ratios"] = ratios(results)
    table = markdown(results)
    (folder / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (folder / "results.md").write_text("# Bench results\n\n" + table)
    chart(results, folder / "ratios.png")
    return table
