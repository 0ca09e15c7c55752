import Foundation
import KilnCore
import SwiftProtobuf

/// Reads ONNX models (`ModelProto`) into Kiln's ``Graph`` IR.
///
/// Handles initializers of every element type BERT-family exports use, in `raw_data`, typed
/// fields or external data files; opset imports; declared and symbolic shapes; and model-local
/// functions (inlined). Anything it cannot represent is a ``KilnError`` with a message, never a crash.
public struct ONNXImporter {
    /// Whether to reject models that use operators outside ``OperatorCoverage`` (on by default;
    /// `kiln inspect` turns it off to describe any model).
    public var checksOperatorCoverage: Bool

    public init(checksOperatorCoverage: Bool = true) {
        self.checksOperatorCoverage = checksOperatorCoverage
    }

    /// Loads a model from an `.onnx` file; external data files are looked up beside it.
    /// - Parameter url: path of the `.onnx` file.
    /// - Returns: the graph.
    public func load(_ url: URL) throws -> Graph {
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw KilnError.io("cannot read model \(url.path): \(error.localizedDescription)")
        }
        return try load(data: data, directory: url.deletingLastPathComponent(), source: url.lastPathComponent)
    }

    /// Loads a model from its serialized bytes.
    /// - Parameters:
    ///   - data: the `ModelProto` bytes.
    ///   - directory: where external data files live (nil if the model has none).
    ///   - source: a name for error messages.
    public func load(data: Data, directory: URL? = nil, source: String = "model") throws -> Graph {
        let model: Onnx_ModelProto
        do {
            var options = BinaryDecodingOptions()
            options.discardUnknownFields = true
            model = try Onnx_ModelProto(serializedBytes: data, options: options)
        } catch {
            throw KilnError.invalidModel("\(source) is not a readable ONNX model (\(error)); the file may be truncated, corrupted or not ONNX at all")
        }
        guard model.hasGraph, model.hasIrVersion, !model.graph.output.isEmpty else {
            throw KilnError.invalidModel("\(source) is not an ONNX model: it has no graph, IR version or outputs")
        }
        let graph = try convert(model, directory: directory)
        if checksOperatorCoverage {
            try OperatorCoverage.validate(graph)
        }
        return graph
    }

    private func convert(_ model: Onnx_ModelProto, directory: URL?) throws -> Graph {
        let decoder = TensorDecoder(modelDirectory: directory)
        let proto = model.graph
        var initializers: [String: Tensor] = [:]
        for tensor in proto.initializer {
            initializers[tensor.name] = try decoder.decode(tensor, context: "initializer '\(tensor.name)'")
        }
        guard proto.sparseInitializer.isEmpty else {
            throw KilnError.invalidModel("sparse initializers are not supported; export with dense weights")
        }
        var opsets: [String: Int] = [:]
        for entry in model.opsetImport {
            opsets[entry.domain == "ai.onnx" ? "" : entry.domain] = Int(entry.version)
        }
        if opsets[""] == nil { opsets[""] = 1 }
        let functions = Dictionary(model.functions.map { ("\($0.domain)::\($0.name)", $0) }, uniquingKeysWith: { $1 })
        var inliner = FunctionInliner(functions: functions, decoder: decoder)
        var nodes: [Node] = []
        for (index, nodeProto) in proto.node.enumerated() {
            nodes.append(contentsOf: try inliner.expand(nodeProto, index: index))
        }
        var metadata = Dictionary(model.metadataProps.map { ($0.key, $0.value) }, uniquingKeysWith: { $1 })
        metadata["producer"] = [model.producerName, model.producerVersion].filter { !$0.isEmpty }.joined(separator: " ")
        metadata["ir_version"] = String(model.irVersion)
        return Graph(
            name: proto.name.isEmpty ? "graph" : proto.name,
            inputs: try proto.input.filter { initializers[$0.name] == nil }.map(valueInfo),
            outputs: try proto.output.map(valueInfo),
            initializers: initializers,
            nodes: nodes,
            valueInfo: Dictionary(try proto.valueInfo.map { ($0.name, try valueInfo($0)) }, uniquingKeysWith: { $1 }),
            opsetImports: opsets,
            metadata: metadata
        )
    }

    private func valueInfo(_ proto: Onnx_ValueInfoProto) throws -> ValueInfo {
        guard proto.hasType, case .tensorType(let tensorType)? = proto.type.value else {
            return ValueInfo(name: proto.name, dtype: nil, shape: nil)
        }
        let dtype = tensorType.elemType == 0 ? nil
            : try ONNXTypes.dtype(rawValue: Int(tensorType.elemType), context: "value '\(proto.name)'")
        let shape: DeclaredShape? = tensorType.hasShape ? tensorType.shape.dim.map { dim in
            switch dim.value {
            case .dimValue(let size)?: return .fixed(Int(size))
            case .dimParam(let name)?: return .symbolic(name)
            case nil: return .symbolic("")
            }
        } : nil
        return ValueInfo(name: proto.name, dtype: dtype, shape: shape)
    }
}
