/// Errors raised by Kiln's core, importer, kernels and runtime.
///
/// Every case carries a message that says what happened and, where there is one, what to do.
/// `description` is what the CLI prints.
public enum KilnError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A tensor was built with inconsistent shape, storage or dtype.
    case invalidTensor(String)
    /// The model file could not be read or parsed.
    case invalidModel(String)
    /// The model uses an operator (or opset) Kiln does not implement.
    case unsupportedOperator(opType: String, domain: String, node: String, opset: Int, supported: [String])
    /// The model's opset is outside the range Kiln implements.
    case unsupportedOpset(domain: String, version: Int, supported: ClosedRange<Int>)
    /// An operator got inputs or attributes that break its contract.
    case invalidNode(node: String, opType: String, message: String)
    /// The caller's inputs do not match the model's signature.
    case invalidInput(String)
    /// A file could not be read or written.
    case io(String)

    public var description: String {
        switch self {
        case .invalidTensor(let message):
            return "invalid tensor: \(message)"
        case .invalidModel(let message):
            return "invalid model: \(message)"
        case let .unsupportedOperator(opType, domain, node, opset, supported):
            let qualified = domain.isEmpty ? opType : "\(domain):\(opType)"
            return "unsupported operator \(qualified) (node '\(node)', opset \(opset)). "
                + "Kiln supports: \(supported.joined(separator: ", ")). "
                + "Re-export the model with standard ONNX ops, or file an issue asking for \(qualified)."
        case let .unsupportedOpset(domain, version, supported):
            let name = domain.isEmpty ? "ai.onnx" : domain
            return "unsupported opset \(name) version \(version); Kiln supports \(supported.lowerBound)...\(supported.upperBound). "
                + "Re-export with opset_version in that range (e.g. torch.onnx.export(..., opset_version=17))."
        case let .invalidNode(node, opType, message):
            return "\(opType) node '\(node)': \(message)"
        case .invalidInput(let message):
            return "invalid input: \(message)"
        case .io(let message):
            return message
        }
    }
}
