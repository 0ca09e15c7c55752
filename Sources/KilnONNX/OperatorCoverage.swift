import KilnCore

/// The ONNX operators Kiln implements, and the opset range it reads.
///
/// This table is the contract between the importer and the kernels: the importer refuses a
/// model that uses anything outside it (with a message listing what is supported), and a test
/// checks that the reference executor has a kernel for every entry.
public enum OperatorCoverage {
    /// Opset versions of the default ONNX domain that Kiln reads: from 9 (older than any
    /// BERT-family export, which use 11+; the per-opset rules such as Slice's inputs from 10
    /// are handled from there) to 23, the newest the per-opset rules were checked against.
    public static let supportedOpsets: ClosedRange<Int> = 9...23

    /// Operators of the default domain, each with the earliest opset Kiln implements it from
    /// (an operator that appears in a later opset, such as `Gelu` in 20, starts there;
    /// 9 means every supported opset).
    public static let operators: [String: Int] = [
        "Abs": 9, "Add": 9, "And": 9, "ArgMax": 9, "Cast": 9, "Ceil": 9, "Concat": 9,
        "Constant": 9, "ConstantOfShape": 9, "CumSum": 11, "Div": 9, "Dropout": 9,
        "Equal": 9, "Erf": 9, "Exp": 9, "Expand": 9, "Flatten": 9, "Floor": 9, "Gather": 9,
        "GatherElements": 11, "GatherND": 11, "Gelu": 20, "Gemm": 9, "Greater": 9, "GreaterOrEqual": 12,
        "Identity": 9, "IsInf": 10, "IsNaN": 9, "LayerNormalization": 17, "Less": 9, "LessOrEqual": 12,
        "Log": 9, "LogSoftmax": 9, "MatMul": 9, "Max": 9, "Min": 9, "Mod": 10, "Mul": 9, "Neg": 9, "Not": 9,
        "Or": 9, "Pad": 9, "Pow": 9, "Range": 11, "Reciprocal": 9, "ReduceMax": 9, "ReduceMean": 9,
        "ReduceSum": 9, "Relu": 9, "Reshape": 9, "Shape": 9, "Sigmoid": 9, "Size": 9, "Slice": 9,
        "Softmax": 9, "Split": 9, "Sqrt": 9, "Squeeze": 9, "Sub": 9, "Tanh": 9, "Tile": 9,
        "Transpose": 9, "Unsqueeze": 9, "Where": 9, "Xor": 9,
    ]

    /// Sorted operator names, for error messages and `kiln inspect`.
    public static var operatorNames: [String] { operators.keys.sorted() }

    /// Whether a default-domain operator is implemented at `opset`.
    public static func supports(opType: String, domain: String, opset: Int) -> Bool {
        guard domain.isEmpty || domain == "ai.onnx", let since = operators[opType] else { return false }
        return opset >= since
    }

    /// Throws ``KilnError/unsupportedOperator(opType:domain:node:opset:supported:)`` for the
    /// first node Kiln cannot run, and ``KilnError/unsupportedOpset(domain:version:supported:)``
    /// when the model's opset is outside ``supportedOpsets``.
    public static func validate(_ graph: Graph) throws {
        let opset = graph.opset
        guard supportedOpsets.contains(opset) else {
            throw KilnError.unsupportedOpset(domain: "", version: opset, supported: supportedOpsets)
        }
        for node in graph.nodes where !supports(opType: node.opType, domain: node.domain, opset: opset) {
            throw KilnError.unsupportedOperator(
                opType: node.opType, domain: node.domain, node: node.name, opset: opset, supported: operatorNames)
        }
    }
}
