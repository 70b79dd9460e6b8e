"""kdcc's CPU schedules for the small GEMMs and GEMVs of a team step (TVM Relax, LLVM targets).

Three ideas, one module each:
- `pipeline`: the Relax pipeline (TVM's cpu_generic default + fast sigmoid/tanh + the schedules);
- `matmul`: matching a matmul PrimFunc and tiling it for SIMD, epilogue fused per tile;
- `elementwise`: an elementwise PrimFunc as one vectorized loop nest.
"""

from kdcc.targets.tvm.schedules.blocks import FALLBACK_ATTR, SCHEDULED_ATTR
from kdcc.targets.tvm.schedules.elementwise import schedule_elementwise
from kdcc.targets.tvm.schedules.matmul import schedule_matmul
from kdcc.targets.tvm.schedules.pipeline import KdccCpuSchedule, cpu_pipeline, fast_math_legalizations, vector_lanes

__all__ = ["SCHEDULED_ATTR", "FALLBACK_ATTR", "vector_lanes", "cpu_pipeline", "KdccCpuSchedule", "schedule_matmul",
           "schedule_elementwise", "fast_math_legalizations"]
