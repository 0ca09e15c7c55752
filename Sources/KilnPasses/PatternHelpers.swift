import KilnCore

extension Node {
    /// For a two-input node, the input that is not `value` (nil when `value` is not an input).
    func otherInput(than value: String) -> String? {
        guard inputs.count == 2 else { return nil }
        if inputs[0] == value { return inputs[1] }
        if inputs[1] == value { return inputs[0] }
        return nil
    }

    /// Whether this is the default-domain operator `opType`.
    func isStandard(_ opType: String) -> Bool { self.opType == opType && (domain.isEmpty || domain == "ai.onnx") }

    /// Whether this is Kiln's operator `opType`.
    func isKiln(_ opType: String) -> Bool { self.opType == opType && domain == KilnOperators.domain }
}

extension GraphIndex {
    /// For `x * c`, `c * x` or `x / c` with `c` a one-element constant: `(x, factor)` where
    /// factor is `c` or `1/c`.
    func scaling(_ node: Node) -> (input: String, factor: Float)? {
        guard node.inputs.count == 2 else { return nil }
        if node.isStandard("Mul") {
            if let c = scalar(node.inputs[1]) { return (node.inputs[0], c) }
            if let c = scalar(node.inputs[0]) { return (node.inputs[1], c) }
        }
        if node.isStandard("Div"), let c = scalar(node.inputs[1]), c != 0 { return (node.inputs[0], 1 / c) }
        return nil
    }

    /// The axes a Reduce* node reduces over (attribute before `inputSince`, input after).
    func reduceAxes(_ node: Node, inputSince: Int = 18) -> [Int]? {
        if graph.opset >= inputSince {
            guard node.inputs.count > 1, let axes = constant(node.inputs[1]) else { return nil }
            return axes.ints.map(Int.init)
        }
        return (try? node.ints("axes"))??.map(Int.init)
    }

    /// Whether `node` is a keepdims ReduceMean over only the last axis of a rank-`rank` input.
    func isLastAxisMean(_ node: Node, rank: Int?) -> Bool {
        guard node.isStandard("ReduceMean"), (try? node.int("keepdims", default: 1)) == 1,
            let axes = reduceAxes(node), axes.count == 1
        else { return false }
        return axes[0] == -1 || (rank != nil && axes[0] == rank! - 1)
    }
}
