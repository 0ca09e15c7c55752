import KilnCore

/// Expands calls to model-local functions (`ModelProto.functions`, which the dynamo exporter
/// may emit) into their body nodes, so the rest of Kiln only ever sees standard operators.
///
/// Inputs and outputs of the body are renamed to the caller's values, internal values get a
/// unique prefix, and attribute references (`ref_attr_name`) take the caller's attributes.
struct FunctionInliner {
    let functions: [String: Onnx_FunctionProto]
    let decoder: TensorDecoder
    private var callCount = 0

    init(functions: [String: Onnx_FunctionProto], decoder: TensorDecoder) {
        self.functions = functions
        self.decoder = decoder
    }

    /// The node itself, or the inlined body when it calls a local function.
    mutating func expand(_ proto: Onnx_NodeProto, index: Int, depth: Int = 0) throws -> [Node] {
        let name = proto.name.isEmpty ? "\(proto.opType)_\(index)" : proto.name
        guard let function = functions["\(proto.domain)::\(proto.opType)"] else {
            return [try plainNode(proto, name: name, callerAttributes: [:])]
        }
        guard depth < 16 else { throw KilnError.invalidModel("function '\(proto.opType)' nests more than 16 levels deep") }
        callCount += 1
        let prefix = "\(name)/\(callCount)/"
        var rename: [String: String] = ["": ""]
        for (formal, actual) in zip(function.input, proto.input) { rename[formal] = actual }
        for (formal, actual) in zip(function.output, proto.output) { rename[formal] = actual }
        let callerAttributes = Dictionary(proto.attribute.map { ($0.name, $0) }, uniquingKeysWith: { $1 })
        var body: [Node] = []
        for (bodyIndex, var inner) in function.node.enumerated() {
            inner.input = inner.input.map { rename[$0] ?? prefix + $0 }
            inner.output = inner.output.map { rename[$0] ?? prefix + $0 }
            inner.attribute = inner.attribute.compactMap { attribute in
                guard attribute.hasRefAttrName else { return attribute }
                guard var bound = callerAttributes[attribute.refAttrName] else { return nil }
                bound.name = attribute.name
                return bound
            }
            inner.name = prefix + (inner.name.isEmpty ? "\(inner.opType)_\(bodyIndex)" : inner.name)
            body.append(contentsOf: try expand(inner, index: bodyIndex, depth: depth + 1))
        }
        return body
    }

    private func plainNode(_ proto: Onnx_NodeProto, name: String, callerAttributes: [String: Onnx_AttributeProto]) throws -> Node {
        var attributes: [String: Attribute] = [:]
        for attribute in proto.attribute {
            attributes[attribute.name] = try AttributeDecoder.decode(attribute, node: name, decoder: decoder)
        }
        return Node(
            name: name, opType: proto.opType, domain: proto.domain == "ai.onnx" ? "" : proto.domain,
            inputs: proto.input, outputs: proto.output, attributes: attributes)
    }
}
