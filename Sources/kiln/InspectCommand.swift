import ArgumentParser
import Foundation
import KilnCore
import KilnONNX

/// `kiln inspect MODEL.onnx`: what a model takes, gives and is made of.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Describe a model (.onnx) or plan (.kiln): signature, opset, op histogram, parameters.",
        discussion: """
            Reads an ONNX model (external data files are looked up beside it) and prints its
            signature and contents. Operators Kiln does not support are listed, not rejected,
            so you can see what a model would need before building it.
            """
    )

    @Argument(help: "The model (.onnx) or plan (.kiln) to describe.")
    var model: String

    @Flag(help: "Print the description as JSON instead of text.")
    var json = false

    func run() throws {
        let loaded = try ModelLoading.load(model, checksOperatorCoverage: false)
        let graph = loaded.graph
        let unsupported = graph.nodes.filter {
            !OperatorCoverage.supports(opType: $0.opType, domain: $0.domain, opset: graph.opset)
        }.map { $0.domain.isEmpty ? $0.opType : "\($0.domain):\($0.opType)" }
        if json {
            try printJSON(graph, unsupported: Array(Set(unsupported)).sorted())
        } else {
            if let header = loaded.planHeader {
                printPlanHeader(header)
                LayerPrecision.print(graph)
            }
            printText(graph, unsupported: Array(Set(unsupported)).sorted())
        }
    }

    private func printPlanHeader(_ header: PlanHeader) {
        print("plan:       format \(header.formatVersion), built by kiln \(header.kilnVersion) at \(header.createdAt)")
        print("target:     \(header.target.kind) \(header.target.architecture), precision \(header.precision)")
        print("source:     \(header.sourceModelName) (sha256 \(header.sourceModelSHA256))")
        if !header.buildOptions.isEmpty {
            print("options:    " + header.buildOptions.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", "))
        }
        for line in header.passSummary { print("pass:       \(line)") }
    }

    private func printText(_ graph: Graph, unsupported: [String]) {
        print("model:      \(model)")
        print("producer:   \(graph.metadata["producer"] ?? "unknown")")
        print("opsets:     " + graph.opsetImports.sorted { $0.key < $1.key }.map { "\($0.key.isEmpty ? "ai.onnx" : $0.key) \($0.value)" }.joined(separator: ", "))
        print("parameters: \(graph.parameterCount.formatted()) in \(graph.initializers.count) initializers")
        print("inputs:")
        for input in graph.inputs { print("  \(input.signature)") }
        print("outputs:")
        for output in graph.outputs { print("  \(output.signature)") }
        print("operators (\(graph.nodes.count) nodes):")
        for (opType, count) in graph.opHistogram.sorted(by: { ($0.value, $1.key) > ($1.value, $0.key) }) {
            print("  \(opType.padding(toLength: 24, withPad: " ", startingAt: 0)) \(count)")
        }
        if unsupported.isEmpty {
            print("kiln support: every operator is supported")
        } else {
            print("kiln support: NOT supported: \(unsupported.joined(separator: ", "))")
        }
    }

    private func printJSON(_ graph: Graph, unsupported: [String]) throws {
        func describe(_ info: ValueInfo) -> [String: Any] {
            ["name": info.name, "dtype": info.dtype?.rawValue ?? NSNull(), "shape": info.shape?.map(\.description) ?? NSNull()]
        }
        let object: [String: Any] = [
            "model": model,
            "producer": graph.metadata["producer"] ?? "",
            "opset": graph.opset,
            "parameters": graph.parameterCount,
            "inputs": graph.inputs.map(describe),
            "outputs": graph.outputs.map(describe),
            "operators": graph.opHistogram,
            "unsupported_operators": unsupported,
        ]
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }
}
