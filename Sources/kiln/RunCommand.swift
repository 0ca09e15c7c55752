import ArgumentParser
import Foundation
import KilnCore
import KilnRuntime
import KilnText

/// `kiln run MODEL --input NAME=FILE.npy ...` or `kiln run MODEL --text ... --tokenizer ...`.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a model (.onnx or .kiln plan) once and write each output as NAME.npy.",
        discussion: """
            Inputs come either from .npy files or from text:
              kiln run model.onnx --input input_ids=ids.npy --input attention_mask=mask.npy --output-dir out/
              kiln run model.onnx --text "I lost my card" --tokenizer tokenizer.json

            With --text, the text is tokenized and the model's input_ids, attention_mask and
            token_type_ids inputs (those it declares) are filled in. Inputs must match the model's
            declared names, dtypes and ranks (see `kiln inspect`).
            """
    )

    @Argument(help: "The model to run (.onnx, or a .kiln plan from `kiln build`).")
    var model: String

    @Option(name: .customLong("input"), help: ArgumentHelp("An input as NAME=FILE.npy; repeat for each input.", valueName: "name=file"))
    var inputs: [String] = []

    @Option(help: "Text to tokenize and run (needs --tokenizer). Repeat for a batch.")
    var text: [String] = []

    @Option(help: "The tokenizer.json (Hugging Face format) to tokenize --text with.")
    var tokenizer: String?

    @Option(help: "Truncate --text to this many tokens (special tokens included).")
    var maxLength: Int = 128

    @Option(help: "Folder for the outputs (NAME.npy each). Created if missing.")
    var outputDir: String = "."

    func validate() throws {
        for input in inputs where !input.contains("=") {
            throw ValidationError("--input expects NAME=FILE.npy, got '\(input)'")
        }
        if !text.isEmpty && tokenizer == nil { throw ValidationError("--text needs --tokenizer tokenizer.json") }
        if text.isEmpty && inputs.isEmpty { throw ValidationError("give the inputs as --input NAME=FILE.npy, or --text with --tokenizer") }
        if maxLength < 2 { throw ValidationError("--max-length must be at least 2") }
    }

    func run() throws {
        let loaded = try ModelLoading.load(model)
        var feeds: [String: Tensor] = [:]
        for input in inputs {
            let parts = input.split(separator: "=", maxSplits: 1).map(String.init)
            feeds[parts[0]] = try NPYFile.read(URL(fileURLWithPath: parts[1]))
        }
        if let tokenizer, !text.isEmpty {
            let wordPiece = try WordPieceTokenizer(contentsOf: URL(fileURLWithPath: tokenizer))
            let encodings = try wordPiece.encodeBatch(text, maxLength: maxLength)
            for (name, tensor) in try TokenizedInputs.tensors(encodings) where loaded.graph.inputs.contains(where: { $0.name == name }) {
                feeds[name] = tensor
            }
        }
        let engine = try ModelLoading.engine(for: loaded)
        let start = ContinuousClock.now
        let outputs = try engine.run(feeds)
        let elapsed = ContinuousClock.now - start
        try writeOutputs(outputs, order: loaded.graph.outputs.map(\.name))
        FileHandle.standardError.write(Data("ran in \(elapsed.formatted(.units(allowed: [.milliseconds], fractionalPart: .show(length: 1))))\n".utf8))
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

/// The standard BERT input tensors for a batch of encodings (padded to the longest).
enum TokenizedInputs {
    static func tensors(_ encodings: [Encoding]) throws -> [String: Tensor] {
        let length = encodings.map(\.ids.count).max() ?? 0
        func matrix(_ column: (Encoding) -> [Int32]) throws -> Tensor {
            let values = encodings.flatMap { encoding -> [Int64] in
                let row = column(encoding).map(Int64.init)
                return row + [Int64](repeating: 0, count: length - row.count)
            }
            return try Tensor(ints: values, shape: [encodings.count, length])
        }
        return [
            "input_ids": try matrix(\.ids),
            "attention_mask": try matrix(\.attentionMask),
            "token_type_ids": try matrix(\.typeIds),
        ]
    }
}
