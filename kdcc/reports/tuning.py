"""`--tune N` in the reports: the step's latency built with and without the MetaSchedule records."""

from __future__ import annotations

from typing import Any

from kdcc.reports.document import Column, Paragraph, Section, Table, text

__all__ = ["tuning_section"]

_COLUMNS = (
    Column("build", "team step built", align="left", cell=lambda r: r["build"]),
    Column("median_us", "median µs", cell=lambda r: f"{r['median_us']:.3f}"),
)


def tuning_section(tuning: dict[str, Any]) -> Section:
    """Tuned vs untuned, where they were timed, and what the tuning database holds."""
    rows = ({"build": "kdcc's schedules (untuned)", "median_us": tuning["untuned_us"]},
            {"build": f"with the tuning records ({tuning['trials']} trials)", "median_us": tuning["tuned_us"]})
    reused = ("reused from the cache, no new trial" if tuning["new_trials"] == 0
              else f"{tuning['new_trials']} new trials")
    checked = ("outputs checked equal here: max |difference| "
               f"{tuning['max_abs_diff']:.3g}" if tuning["max_abs_diff"] is not None
               else "outputs not compared here (the device is another machine)")
    note = (f"MetaSchedule tuning of the team step's {len(tuning['tasks'])} GEMM kernels on device "
            f"{tuning['device']} ({tuning['how']}), {reused}: tuning cache entry {tuning['key']}. Each build timed "
            f"on that device ({tuning['date']}): median of one-call samples, the lower of two rounds alternating "
            f"the two builds; the "
            f"tuned one is {tuning['speedup']:.2f}× the untuned one's speed; {checked}. The tuned records replace "
            f"kdcc's schedule for the kernels they cover in the shipped team step library.")
    return Section("Tuning (--tune)", (Table(_COLUMNS, rows, "Team step latency, tuned vs untuned"),
                                       Paragraph(text(note))))
