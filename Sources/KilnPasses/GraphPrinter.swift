import KilnCore

/// The text form of a graph, for `--dump-after` and test failures: one line per node,
/// `outputs = domain::OpType(inputs) {attributes}`, with inferred types when given.
public enum GraphPrinter {
    /// Renders `graph`.
    /// - Parameters:
    ///   - graph: the graph to print.
    ///   - types: inferred value types to print after each node's outputs (optional).
    /// - Returns: the text, ending with a newline.
    public static func text(_ graph: Graph, types: ShapeInference? = nil) -> String {
        var lines: [String] = ["graph \(graph.name) (opset \(graph.opset), \(graph.nodes.count) nodes, \(graph.initializers.count) initializers)"]
        for input in graph.inputs { lines.append("  input  \(input.signature)") }
        for name in graph.initializers.keys.sorted() {
            let tensor = graph.initializers[name]!
            let preview = tensor.count <= 8 ? " = \(tensor.dtype.isFloatingPoint ? tensor.floats.map(String.init(describing:)) : tensor.ints.map(String.init(describing:)))" : ""
            lines.append("  const  \(name): \(tensor.signature)\(preview)")
        }
        for node in graph.nodes {
            let op = node.domain.isEmpty ? node.opType : "\(node.domain)::\(node.opType)"
            let attributes = node.attributes.keys.sorted().map { "\($0)=\(describe(node.attributes[$0]!))" }
            let attributeText = attributes.isEmpty ? "" : " {\(attributes.joined(separator: ", "))}"
            var line = "  \(node.outputs.joined(separator: ", ")) = \(op)(\(node.inputs.joined(separator: ", ")))\(attributeText)"
            if let types {
                line += "  # " + node.outputs.map { types[$0]?.description ?? "?" }.joined(separator: ", ")
            }
            lines.append(line)
        }
        for output in graph.outputs { lines.append("  output \(output.signature)") }
        return lines.joined(separator: "\n") + "\n"
    }

    private static func describe(_ attribute: Attribute) -> String {
        switch attribute {
        case .int(let value): return String(value)
        case .float(let value): return String(value)
        case .string(let value): return "\"\(value)\""
        case .tensor(let tensor): return "tensor \(tensor.signature)"
        case .ints(let values): return "\(values)"
        case .floats(let values): return "\(values)"
        case .strings(let values): return "\(values)"
        }
    }
}
