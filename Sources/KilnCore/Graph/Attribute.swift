/// A node attribute, as ONNX defines them (subgraph attributes are not supported: BERT-family
/// exports do not use `If`/`Loop`).
public enum Attribute: Sendable, Equatable, Codable {
    case int(Int64)
    case float(Float)
    case string(String)
    case tensor(Tensor)
    case ints([Int64])
    case floats([Float])
    case strings([String])
}

extension Node {
    /// An integer attribute, or `defaultValue` when absent.
    public func int(_ name: String, default defaultValue: Int64) throws -> Int64 {
        guard let attribute = attributes[name] else { return defaultValue }
        guard case .int(let value) = attribute else { throw attributeTypeError(name, expected: "int") }
        return value
    }

    /// An integer attribute that may be absent.
    public func optionalInt(_ name: String) throws -> Int64? {
        guard attributes[name] != nil else { return nil }
        return try int(name, default: 0)
    }

    /// A float attribute, or `defaultValue` when absent.
    public func float(_ name: String, default defaultValue: Float) throws -> Float {
        guard let attribute = attributes[name] else { return defaultValue }
        switch attribute {
        case .float(let value): return value
        case .int(let value): return Float(value)
        default: throw attributeTypeError(name, expected: "float")
        }
    }

    /// A string attribute, or `defaultValue` when absent.
    public func string(_ name: String, default defaultValue: String) throws -> String {
        guard let attribute = attributes[name] else { return defaultValue }
        guard case .string(let value) = attribute else { throw attributeTypeError(name, expected: "string") }
        return value
    }

    /// An integer-list attribute, or nil when absent.
    public func ints(_ name: String) throws -> [Int64]? {
        guard let attribute = attributes[name] else { return nil }
        switch attribute {
        case .ints(let values): return values
        case .int(let value): return [value]
        default: throw attributeTypeError(name, expected: "ints")
        }
    }

    /// A tensor attribute, or nil when absent.
    public func tensor(_ name: String) throws -> Tensor? {
        guard let attribute = attributes[name] else { return nil }
        guard case .tensor(let value) = attribute else { throw attributeTypeError(name, expected: "tensor") }
        return value
    }

    private func attributeTypeError(_ name: String, expected: String) -> KilnError {
        .invalidNode(node: self.name, opType: opType, message: "attribute '\(name)' should be of type \(expected)")
    }
}
