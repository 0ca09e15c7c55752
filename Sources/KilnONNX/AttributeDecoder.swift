import KilnCore

/// Converts ONNX `AttributeProto`s to ``Attribute`` values.
enum AttributeDecoder {
    static func decode(_ proto: Onnx_AttributeProto, node: String, decoder: TensorDecoder) throws -> Attribute {
        let context = "attribute '\(proto.name)' of node '\(node)'"
        switch effectiveType(proto) {
        case .float: return .float(proto.f)
        case .int: return .int(proto.i)
        case .string: return .string(String(decoding: proto.s, as: UTF8.self))
        case .tensor: return .tensor(try decoder.decode(proto.t, context: context))
        case .floats: return .floats(proto.floats)
        case .ints: return .ints(proto.ints)
        case .strings: return .strings(proto.strings.map { String(decoding: $0, as: UTF8.self) })
        default:
            throw KilnError.invalidModel("\(context) has type \(proto.type), which Kiln does not support (subgraphs and sparse tensors are not used by BERT-family models)")
        }
    }

    /// Old exporters leave `type` unset; infer it from which field holds data.
    private static func effectiveType(_ proto: Onnx_AttributeProto) -> Onnx_AttributeProto.AttributeType {
        if proto.hasType && proto.type != .undefined { return proto.type }
        if proto.hasF { return .float }
        if proto.hasI { return .int }
        if proto.hasS { return .string }
        if proto.hasT { return .tensor }
        if !proto.floats.isEmpty { return .floats }
        if !proto.ints.isEmpty { return .ints }
        if !proto.strings.isEmpty { return .strings }
        return .undefined
    }
}
