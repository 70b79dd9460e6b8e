"""`compile --ablate`: what each distillation term contributes.

The distill pass is re-run from the same pruned student with one loss term's
weight set to zero at a time; each variant is scored on the probe (fidelity)
and in MPE (mean team return over the same seeds), next to the full loss.
Each row names the weight the compile used (the user's `--opt`, else the
default), since that is what was removed.
"""

from __future__ import annotations

from dataclasses import replace

from kdcc.marl.worlds import make_env
from kdcc.marl.probe import fidelity, make_probe, replay
from kdcc.marl.rollout import TorchPolicy, run_episodes
from kdcc.marl.seeds import REPORT
from kdcc.passes import get_pass
from kdcc.reports.document import Column, Paragraph, Section, Table, text

__all__ = ["ablate_distillation", "ABLATED_TERMS"]

ABLATED_TERMS = ("w_kl", "w_q", "w_ce", "w_relation", "w_value", "w_resource")


_COLUMNS = (Column("label", "variant", align="left"),
            Column("agreement", "action agree", cell=lambda r: f"{r['agreement']:.3f}"),
            Column("max_abs_dq", "max abs ΔQ", cell=lambda r: f"{r['max_abs_dq']:.3g}"),
            Column("mean_abs_dq_tot", "mean abs ΔQ_tot", cell=lambda r: f"{r['mean_abs_dq_tot']:.3g}"),
            Column("return", "team return", cell=lambda r: f"{r['return']:.2f}"))


def ablate_distillation(result, ctx, episodes: int = 20, seed: int = REPORT.start,
                        title: str = "Ablation of the distillation terms") -> Section:
    """The report section: full loss vs each term removed (probe fidelity, MPE team return)."""
    names = [r.name for r in result.records]
    if "distill" not in names:
        return Section(title, (Paragraph(text("The pipeline has no distill pass: nothing to ablate.")),))
    before = result.records[names.index("distill") - 1].program
    probe = make_probe(ctx.teacher)
    env = make_env(ctx.teacher.spec.env)
    used = ctx.config_for("distill")
    rows = []
    for term in (None, *ABLATED_TERMS):
        options = dict(ctx.options)
        if term is not None:
            options[f"distill.{term}"] = 0.0
        student = get_pass("distill").run(before, replace(ctx, options=options))
        fid = fidelity(replay(student.team_module(), student.spec, probe), probe)
        policy = TorchPolicy(student.spec, student.team_module())
        label = "full loss" if term is None else f"without {term[2:]} (weight {getattr(used, term)} → 0)"
        rows.append({"label": label, "agreement": fid["action_agreement"], "max_abs_dq": fid["max_abs_dq"],
                     "mean_abs_dq_tot": fid["mean_abs_dq_tot"], "return": run_episodes(env, policy, episodes, seed).mean})
    note = (f"Team return: mean over {episodes} MPE episodes, report seeds {seed}–{seed + episodes - 1} (never used "
            f"in training).")
    return Section(title, (Table(_COLUMNS, tuple(rows), title), Paragraph(text(note))))
