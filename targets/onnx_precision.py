"""student.onnx (and agents/*.onnx) at the compiled precision, for inspection and ONNX Runtime.

- fp16: ONNX Runtime's own float16 converter, with the graph's inputs and outputs kept float32/int64
  (`keep_io_types`): the weights and activations inside are float16, as in the compiled step.
- int8: QDQ form from `onnxruntime.quantization.quantize_static`: MatMul/Gemm weights symmetric int8
  per output channel, activations symmetric int8 per tensor, calibrated (MinMax) on the same samples
  as the compiled step. ONNX Runtime runs QDQ MatMuls as integer kernels; the scales it picks come
  from the same data but its own calibrator, so its rounding is close to, not equal to, TVM's.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from kdcc.core.errors import KdccError

__all__ = ["onnx_at_precision"]


def _fp16(model):
    from onnxruntime.transformers.float16 import convert_float_to_float16

    return convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False)


def _int8(model, input_names: Sequence[str], samples: Sequence[tuple]):
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    taken = {i.name for i in model.graph.input}  # the exporter drops inputs a graph does not read

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.feeds = iter([{n: np.ascontiguousarray(a) for n, a in zip(input_names, s) if n in taken}
                               for s in samples])

        def get_next(self):
            return next(self.feeds, None)

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_static logs a "consider pre-processing" warning per call
    with tempfile.TemporaryDirectory(prefix="kdcc-qdq-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, str(src))
        quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        weight_type=QuantType.QInt8, activation_type=QuantType.QInt8,
                        op_types_to_quantize=["MatMul", "Gemm"],
                        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
        root.setLevel(level)
        return onnx.load(str(dst))


def onnx_at_precision(onnx_model: bytes, precision: str, input_names: Sequence[str] = (),
                      samples: Sequence[tuple] = ()) -> bytes:
    """`onnx_model` (fp32 bytes) at `precision`; int8 needs `samples` (numpy input tuples, in `input_names` order)."""
    if precision == "fp32":
        return onnx_model
    import onnx

    model = onnx.load_from_string(onnx_model)
    if precision == "fp16":
        model = _fp16(model)
    elif precision == "int8":
        if not samples:
            raise KdccError("int8 ONNX: no calibration samples")
        model = _int8(model, input_names, samples)
    else:
        raise KdccError(f"unknown precision {precision!r}")
    model.producer_name, model.producer_version = "kdcc", ""
    return model.SerializeToString(deterministic=True)
