"""Static check: can TensorRT 10.x (JetPack 6) parse this ONNX graph?

TensorRT cannot be installed here, so CI checks our graphs against the operator table of
onnx-tensorrt for TensorRT 10.3 (JetPack 6.1; docs/operators.md of the release/10.3 branch),
plus the restrictions that bite quantized graphs: Q/DQ zero points must be 0 and Conv/Gemm
weights initializers. A failure names the node, op and why, before anything reaches a Jetson.
"""
from __future__ import annotations

from pathlib import Path

TENSORRT_VERSION = "10.3 (JetPack 6.1)"

SUPPORTED = set("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast CastLike Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DepthToSpace
DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor GRU Gather
GatherElements GatherND Gelu Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample
GroupNormalization HardSigmoid HardSwish Hardmax Identity If ImageScaler InstanceNormalization
IsInf IsNaN LRN LSTM LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax Loop LpNormalization LpPool MatMul
Max MaxPool Mean Min Mish Mod Mul Neg NonMaxSuppression NonZero
Not OneHot Or PRelu Pad ParametricSoftplus Pow QuantizeLinear RNN RandomNormal RandomNormalLike RandomUniform
RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin
ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence RoiAlign Round ScaledTanh Scan Scatter
ScatterElements ScatterND Selu Shape Sigmoid Sign Sin Sinh Size Slice Softmax Softplus
Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze
Upsample Where Xor
""".split())

# Listed as unsupported there, or too new to rely on: flagged like any op missing above. When
# unsure we leave an op out: a false alarm here costs a look, a miss costs a failed Jetson build.
UNSUPPORTED = set("""
BitShift ConcatFromSequence ConvInteger Det Optional OptionalGetElement OptionalHasElement MatMulInteger MaxRoiPool
MaxUnpool NegativeLogLikelihoodLoss QLinearConv QLinearMatMul SequenceAt SequenceConstruct SequenceEmpty SequenceErase
SequenceInsert SequenceLength SplitToSequence StringNormalizer TfIdfVectorizer ImageDecoder RegexFullMatch StringConcat
StringSplit
""".split())


def check_model(model) -> list[str]:
    """Problems TensorRT's ONNX parser would hit; empty when the graph is fine."""
    from onnx import numpy_helper
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    consts = {o: n for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    problems = []
    for node in model.graph.node:
        where = f"node '{node.name or node.output[0]}'"
        if node.domain not in ("", "ai.onnx"):
            problems.append(f"{where}: op {node.domain}::{node.op_type} is a custom-domain op TensorRT {TENSORRT_VERSION} cannot parse")
        elif node.op_type in UNSUPPORTED or node.op_type not in SUPPORTED:
            problems.append(f"{where}: op {node.op_type} is not supported by TensorRT {TENSORRT_VERSION}")
        elif node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2:
            zp = inits.get(node.input[2])
            if zp is None and node.input[2] in consts:
                zp = numpy_helper.to_array(consts[node.input[2]].attribute[0].t)
            if zp is not None and zp.any():
                problems.append(f"{where}: {node.op_type} has a non-zero zero point; TensorRT needs symmetric int8")
        elif node.op_type in ("Conv", "ConvTranspose") and node.input[1] not in inits and node.input[1] not in consts:
            producer = next((n for n in model.graph.node if node.input[1] in n.output), None)
            if producer is None or producer.op_type != "DequantizeLinear":
                problems.append(f"{where}: {node.op_type} weights are computed at run time; TensorRT needs them constant")
    return problems


def check_file(path: Path) -> list[str]:
    import onnx
    return check_model(onnx.load(str(path)))
