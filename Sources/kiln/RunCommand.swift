import ArgumentParser
import Foundation
import KilnCore
import KilnONNX
import KilnRuntime

/// `kiln run MODEL.onnx --input NAME=FILE.npy ...`: one inference with the reference executor.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a model once on inputs from .npy files and write each output as NAME.npy.",
        discussion: """
            Examples:
              kiln run model.onnx --input input_ids=ids.npy --input attention_mask=mask.npy --output-dir out/

            Inputs must match the model's declared names, dtypes and ranks (see `kiln inspect`).
            Runs on Kiln's reference executor, which is exact but slow; it is the yardstick for
            compiled engines.
            """
    )

    @Argument(help: "The model to run (.onnx).")
    var model: String

    @Option(name: .customLong("input"), help: ArgumentHelp("An input as NAME=FILE.npy; repeat for each input.", valueName: "name=file"))
    var inputs: [String] = []

    @Option(help: "Folder for the outputs (NAME.npy each). Created if missing.")
    var outputDir: String = "."

    func validate() throws {
        for input in inputs where !input.contains("=") {
            throw ValidationError("--input expects NAME=FILE.npy, got '\(input)'")
        }
    }

    func run() throws {
        let graph = try ONNXImporter().load(URL(fileURLWithPath: model))
        var feeds: [String: Tensor] = [:]
        for input in inputs {
            let parts = input.split(separator: "=", maxSplits: 1).map(String.init)
            feeds[parts[0]] = try NPYFile.read(URL(fileURLWithPath: parts[1]))
        }
        let executor = try ReferenceExecutor(graph: graph)
        let start = ContinuousClock.now
        let outputs = try executor.run(feeds)
        let elapsed = ContinuousClock.now - start
        try writeOutputs(outputs, order: graph.outputs.map(\.name))
        FileHandle.standardError.write(Data("ran \(graph.nodes.count) nodes in \(elapsed.formatted(.units(allowed: [.milliseconds])))\n".utf8))
    }

    func writeOutputs(_ outputs: [String: Tensor], order: [String]) throws {
        let directory = URL(fileURLWithPath: outputDir)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        for name in order {
            guard let tensor = outputs[name] else { continue }
            let safeName = name.map { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" || $0 == "." ? $0 : "_" }
            let url = directory.appendingPathComponent(String(safeName) + ".npy")
            try NPYFile.write(tensor, to: url)
            print("\(name): \(tensor.signature) -> \(url.path)")
        }
    }
}
