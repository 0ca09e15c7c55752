import KilnCore

// GELU fusion
//
// Pattern 1, exact (erf) GELU, in the arrangements exporters write:
//
//     x ─► Div(√2) | Mul(1/√2) ─► Erf ─► Add(1) ─► e
//     then e·x·0.5 as two Muls in any order: Mul(Mul(x, e), 0.5), Mul(x, Mul(0.5, e)),
//     Mul(e, Mul(x, 0.5)), ...
//
// Pattern 2, tanh approximation (gelu_new, gelu_pytorch_tanh written out):
//
//     x ─► Pow(3) | Mul(x, Mul(x, x)) ─► Mul(0.044715) ─► Add(x, ·) ─► Mul(√(2/π)) ─► Tanh ─► Add(1) ─► e
//     then e·x·0.5 as above.
//
// Pattern 3, the ONNX op: Gelu(x) {approximate}.
//
// Replacement: kiln::Gelu(x) {approximate = "none" | "tanh"}.
//
// Why it is safe: the fused op computes the same formula in fp32; only the order of the
// final multiplications changes (≤ 1 ulp). Constants must match √2, 1/√2, 0.044715 and
// √(2/π) to 1e-5 relative and 1, 0.5 to the same, and the `x` multiplied at the end must be
// the very value fed to Erf/Tanh; otherwise nothing is rewritten.

/// Fuses the erf and tanh GELU forms and the ONNX `Gelu` op into `kiln::Gelu`.
public struct GeluFusionPass: Pass {
    public let name = "gelu-fusion"

    public init() {}

    private static let sqrt2: Float = 1.4142135
    private static let sqrt2OverPi: Float = 0.7978846
    private static let tolerance: Float = 1e-5

    public func run(_ graph: inout Graph) throws -> PassReport {
        let index = GraphIndex(graph)
        var replacements: [Int: [Node]] = [:]
        var counts = ["none": 0, "tanh": 0, "op": 0]
        for (position, node) in graph.nodes.enumerated() {
            var match: (x: String, approximate: String, final: String)?
            if node.isStandard("Gelu") {
                let approximate = (try? node.string("approximate", default: "none")) ?? "none"
                match = (node.inputs[0], approximate, node.outputs[0])
                counts["op"]! += 1
            } else if node.isStandard("Erf"), let x = erfArgument(node, index: index),
                let final = finalProduct(after: node, x: x, index: index)
            {
                match = (x, "none", final)
                counts["none"]! += 1
            } else if node.isStandard("Tanh"), let x = tanhArgument(node, index: index),
                let final = finalProduct(after: node, x: x, index: index)
            {
                match = (x, "tanh", final)
                counts["tanh"]! += 1
            }
            guard let match, let finalPosition = index.producers[match.final] else { continue }
            let target = node.isStandard("Gelu") ? position : finalPosition
            replacements[target] = [
                Node(
                    name: "\(node.name)/Gelu", opType: KilnOperators.gelu, domain: KilnOperators.domain, inputs: [match.x],
                    outputs: [match.final], attributes: ["approximate": .string(match.approximate)])
            ]
        }
        try graph.replaceNodes(replacements)
        graph.removeDeadNodes()
        return PassReport(pass: name, changes: [
            .init("fused", counts["none"]!, "erf GELUs"), .init("fused", counts["tanh"]!, "tanh GELUs"),
            .init("converted", counts["op"]!, "Gelu ops"),
        ])
    }

    /// `x` for `Erf(x / √2)` or `Erf(x · (1/√2))`.
    private func erfArgument(_ erf: Node, index: GraphIndex) -> String? {
        guard let scaling = index.producer(of: erf.inputs[0]).flatMap(index.scaling) else { return nil }
        return abs(scaling.factor - 1 / Self.sqrt2) <= Self.tolerance ? scaling.input : nil
    }

    /// `x` for `Tanh(√(2/π) · (x + 0.044715 · x³))`.
    private func tanhArgument(_ tanh: Node, index: GraphIndex) -> String? {
        guard let outer = index.producer(of: tanh.inputs[0]).flatMap(index.scaling),
            abs(outer.factor - Self.sqrt2OverPi) <= Self.tolerance * Self.sqrt2OverPi,
            let sum = index.producer(of: outer.input, is: "Add")
        else { return nil }
        for x in sum.inputs {
            guard let cubicTerm = sum.otherInput(than: x), let scaled = index.producer(of: cubicTerm).flatMap(index.scaling),
                abs(scaled.factor - 0.044715) <= Self.tolerance * 0.044715, let cube = index.producer(of: scaled.input),
                isCube(cube, of: x, index: index)
            else { continue }
            return x
        }
        return nil
    }

    private func isCube(_ node: Node, of x: String, index: GraphIndex) -> Bool {
        if node.isStandard("Pow") { return node.inputs[0] == x && index.isScalar(node.inputs[1], 3, tolerance: 0) }
        guard node.isStandard("Mul"), let other = node.otherInput(than: x), let square = index.producer(of: other, is: "Mul") else {
            return false
        }
        return square.inputs[0] == x && square.inputs[1] == x
    }

    /// After `Erf`/`Tanh`: `Add(·, 1)` then multiplications by `x` and `0.5` (in any order,
    /// possibly as one factor `Mul(x, 0.5)`). Returns the value equal to GELU(x).
    private func finalProduct(after node: Node, x: String, index: GraphIndex) -> String? {
        guard let add = index.soleReader(of: node.outputs[0]), add.isStandard("Add"),
            let one = add.otherInput(than: node.outputs[0]), index.isScalar(one, 1, tolerance: Self.tolerance)
        else { return nil }
        var current = add.outputs[0]
        var haveX = false, haveHalf = false
        for _ in 0..<2 {
            guard let mul = index.soleReader(of: current), mul.isStandard("Mul"), let factor = mul.otherInput(than: current) else { return nil }
            if factor == x, !haveX {
                haveX = true
            } else if index.isScalar(factor, 0.5, tolerance: Self.tolerance), !haveHalf {
                haveHalf = true
            } else if let half = index.producer(of: factor).flatMap(index.scaling), half.input == x,
                abs(half.factor - 0.5) <= Self.tolerance, !haveX, !haveHalf
            {
                haveX = true
                haveHalf = true
            } else {
                return nil
            }
            current = mul.outputs[0]
            if haveX && haveHalf { return current }
        }
        return nil
    }
}
