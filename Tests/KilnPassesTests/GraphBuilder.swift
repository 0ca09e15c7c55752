import Foundation
import KilnCore
import KilnPasses

/// Builds small graphs by hand for pass unit tests.
struct GraphBuilder {
    var nodes: [Node] = []
    var initializers: [String: Tensor] = [:]
    var inputs: [ValueInfo] = []
    var opset = 17
    private var counter = 0

    init(opset: Int = 17) { self.opset = opset }

    mutating func input(_ name: String, _ dtype: DType = .float32, _ dims: [KilnCore.Dimension]) -> String {
        inputs.append(ValueInfo(name: name, dtype: dtype, shape: dims))
        return name
    }

    mutating func constant(_ tensor: Tensor, name: String? = nil) -> String {
        counter += 1
        let key = name ?? "c\(counter)"
        initializers[key] = tensor
        return key
    }

    mutating func scalar(_ value: Float) -> String { constant(.scalar(value)) }
    mutating func ints(_ values: [Int64]) -> String { constant(try! Tensor(ints: values, shape: [values.count])) }

    /// A deterministic pseudo-random float tensor.
    mutating func weights(_ shape: [Int], seed: Int = 1) -> String {
        var state = UInt64(seed) &* 6364136223846793005 &+ 1442695040888963407
        let values = (0..<shape.reduce(1, *)).map { _ -> Float in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int(state >> 40) % 2001 - 1000) / 2000
        }
        return constant(try! Tensor(floats: values, shape: shape))
    }

    @discardableResult
    mutating func node(_ opType: String, _ inputs: [String], _ attributes: [String: Attribute] = [:], outputs: Int = 1, domain: String = "") -> String {
        counter += 1
        let names = (0..<outputs).map { "\(opType.lowercased())\(counter)" + ($0 == 0 ? "" : "_\($0)") }
        nodes.append(Node(name: "\(opType)_\(counter)", opType: opType, domain: domain, inputs: inputs, outputs: names, attributes: attributes))
        return names[0]
    }

    func graph(outputs: [String]) -> Graph {
        Graph(
            inputs: inputs, outputs: outputs.map { ValueInfo(name: $0, dtype: nil, shape: nil) }, initializers: initializers, nodes: nodes,
            opsetImports: ["": opset])
    }
}

/// A deterministic pseudo-random input tensor.
func randomTensor(_ shape: [Int], seed: Int = 7) -> Tensor {
    var state = UInt64(seed) &* 2862933555777941757 &+ 3037000493
    let values = (0..<shape.reduce(1, *)).map { _ -> Float in
        state = state &* 2862933555777941757 &+ 3037000493
        return Float(Int(state >> 40) % 4001 - 2000) / 1000
    }
    return try! Tensor(floats: values, shape: shape)
}

/// Runs `pass` on `graph`, checks the result is valid and computes the same outputs (within
/// `tolerance` max-abs) on `inputs`; returns the rewritten graph.
func runChecked(_ pass: any Pass, on graph: Graph, inputs: [[String: Tensor]], tolerance: Float = 1e-5) throws -> (Graph, PassReport) {
    var rewritten = graph
    let report = try pass.run(&rewritten)
    try GraphValidator.validate(rewritten, expectedOutputs: graph.outputs.map(\.name), after: pass.name)
    for feed in inputs {
        let before = try allValues(of: graph, inputs: feed)
        let after = try allValues(of: rewritten, inputs: feed)
        for output in graph.outputs {
            guard let expected = before[output.name], let actual = after[output.name] else {
                throw KilnError.invalidModel("output \(output.name) missing")
            }
            let difference = maxAbsDifference(actual, expected)
            if difference > tolerance { throw KilnError.invalidModel("\(pass.name): output \(output.name) differs by \(difference)") }
        }
    }
    return (rewritten, report)
}

extension Graph {
    func count(_ opType: String) -> Int { nodes.filter { $0.opType == opType }.count }
}
