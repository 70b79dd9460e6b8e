"""The `--keep` search in the reports: every width it scored, the rule, the choice, and the front.

The table is a budget-vs-score table like `--pareto`'s, but its score is the
paired normalised one the decision used (on the selection seeds, with its
standard error), so a reader can check the choice by eye: the chosen row is
the cheapest whose score − z·SE clears the bar there and on the confirmation
seeds. The student's score — in the text, keep.json and profile.json — is the
confirmation score, measured on seeds no decision used.
"""

from __future__ import annotations

from typing import Any

from kdcc.reports.document import Column, Paragraph, Section, Table, text

__all__ = ["KEEP_COLUMNS", "keep_section", "keep_figure", "kept_score"]


def _columns(key: str) -> tuple[Column, ...]:
    metric, scope = key.split(".")
    return (
        Column("width", "agent width", align="left", cell=lambda p: f"{p['kind']} {p['width']}"),
        Column(key, f"{metric} per {'robot' if scope == 'robot' else 'team'} step",
               cell=lambda p: f"{p[key]:,.0f}" if metric in ("flops", "bytes") else f"{p[key]:.2f}"),
        Column("flops", "FLOPs/team step", cell=lambda p: f"{p['flops']:,}"),
        Column("latency_us", "est. µs", cell=lambda p: f"{p['latency_us']:.2f} ({p['device']})"),
        Column("agreement", "action agree", cell=lambda p: f"{p['agreement']:.3f}"),
        Column("return", "team return", cell=lambda p: f"{p['return']:.2f} ± {p['return_std']:.2f}"),
        Column("score", "score ± SE", cell=lambda p: f"{p['score']:.3f} ± {p['se']:.3f}"),
        Column("keeps", "keeps", align="left", cell=lambda p: "yes" if p["keeps"] else "no"),
        Column("on_front", "front", align="left", cell=lambda p: "●" if p["on_front"] else ""),
        Column("chosen", "chosen", align="left", cell=lambda p: "★" if p.get("chosen") else ""),
    )


KEEP_COLUMNS = _columns("flops.robot")
_KINDS = {"rnn": "GRU", "ff": "feed-forward"}


def _span(widths: list[int]) -> str:
    """4, 8, …, 256 (64 widths)."""
    return ", ".join(map(str, widths)) if len(widths) <= 4 else f"{widths[0]}, {widths[1]}, …, {widths[-1]} " \
        f"({len(widths)} widths)"


def keep_section(search: dict[str, Any], title: str = "Keep the score (--keep)") -> Section:
    """The evaluated points (cheapest first), the rule, and the distillation-seed spread at the chosen width."""
    c, d = search["chosen"], search["distill_seeds"]
    lo, hi = search["seeds"]
    ladder = "; ".join(f"{_KINDS.get(k, k)} {_span(ws)}" for k, ws in search["ladder"].items())
    rungs = sum(len(ws) for ws in search["ladder"].values())
    note = (f"Rule: {search['rule']}. Score = (student − random) / (teacher − random), mean team return over "
            f"{search['episodes']} selection episodes (seeds {lo}–{hi}, never used in training), paired with "
            f"the teacher episode by episode (teacher {search['teacher_return']:.2f}, uniform random "
            f"{search['random_return']:.2f}). Candidates within the budget: {ladder}; each kind searched from its "
            f"cheapest width up in doubling steps until one keeps the score, then by bisection, assuming the score "
            f"grows with width, and only below the cheapest student kept so far ({len(search['points'])} of "
            f"{rungs} trained, {search['workers']} at a time, {search.get('backend', 'process')}). Chosen: "
            f"{c['kind']} {c['width']}, score {c['score']:.3f} ± {c['se']:.3f} on {c['episodes']} fresh "
            f"confirmation episodes (seeds {c['seeds'][0]}–{c['seeds'][1]}; it scored "
            f"{c['selection']['score']:.3f} ± {c['selection']['se']:.3f} on the selection seeds, where it was "
            f"chosen){_refused(search)}. Over distillation seeds {d['seeds']} (selection seeds): "
            f"{d['mean']:.3f} ± {d['se']:.3f} (mean ± s.e.; {', '.join(f'{s:.3f}' for s in d['scores'])}).")
    return Section(title, (Table(_columns(search["metric"]), tuple(search["points"]), title), Paragraph(text(note))))


def _refused(search: dict[str, Any]) -> str:
    """The candidates the confirmation turned down before the chosen one, if any."""
    refused = [c for c in search.get("confirmations", []) if not c["keeps"]]
    return "".join(f"; {c['kind']} {c['width']} kept on the selection seeds but scored {c['score']:.3f} ± "
                   f"{c['se']:.3f} on the confirmation seeds, so the search stepped to the next candidate"
                   for c in refused)


def kept_score(search: dict[str, Any]) -> dict[str, Any]:
    """The chosen student's score as profile.json states it: the confirmation's, the selection's beside it."""
    c = search["chosen"]
    return {"normalised": c["score"], "se": c["se"], "episodes": c["episodes"], "seeds": c["seeds"],
            "measured_on": "confirmation seeds (no training or decision used them)", "selection": c["selection"],
            "keep": search["fraction"], "rule": search["rule"]}


def keep_figure(search: dict[str, Any]):
    """Score ± SE against the budget's metric for every width scored; the bar, the front and the choice."""
    from matplotlib.figure import Figure

    key, pts = search["metric"], search["points"]
    fig = Figure(figsize=(6.5, 4.5), layout="constrained")
    ax = fig.subplots()
    front = sorted((p for p in pts if p["on_front"]), key=lambda p: p[key])
    ax.plot([p[key] for p in front], [p["score"] for p in front], "-", color="#c44e52", lw=1.5, label="front")
    for p in pts:
        color = "#c44e52" if p.get("chosen") else ("#4c72b0" if p["keeps"] else "gray")
        ax.errorbar(p[key], p["score"], yerr=p["se"], fmt="*" if p.get("chosen") else "o", color=color, capsize=3)
        ax.annotate(f"{p['kind']} {p['width']}", (p[key], p["score"]), textcoords="offset points", xytext=(6, 4),
                    fontsize=8)
    ax.axhline(search["fraction"], ls="--", color="gray", label=f"--keep {search['fraction']:g}")
    ax.set_xlabel(key.replace(".", " per ") + " step")
    ax.set_ylabel("normalised score (± 1 SE, paired)")
    ax.margins(x=0.15)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle(f"--keep search ({search['episodes']} selection episodes per width)")
    return fig
