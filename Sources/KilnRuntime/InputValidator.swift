import KilnCore

/// Checks caller-supplied tensors against a model's declared inputs before anything runs, so
/// a wrong name, dtype or shape is a clear error instead of a failure deep inside a kernel.
public enum InputValidator {
    /// Throws ``KilnError/invalidInput(_:)`` describing the first mismatch.
    public static func validate(_ inputs: [String: Tensor], against signature: [ValueInfo]) throws {
        let expected = signature.map(\.signature).joined(separator: ", ")
        let missing = signature.map(\.name).filter { inputs[$0] == nil }
        guard missing.isEmpty else {
            throw KilnError.invalidInput("missing input(s) \(missing.joined(separator: ", ")); the model expects \(expected)")
        }
        let unknown = inputs.keys.filter { name in !signature.contains { $0.name == name } }.sorted()
        guard unknown.isEmpty else {
            throw KilnError.invalidInput("unknown input(s) \(unknown.joined(separator: ", ")); the model expects \(expected)")
        }
        var symbols: [String: (size: Int, input: String)] = [:]
        for info in signature {
            let tensor = inputs[info.name]!
            if let dtype = info.dtype, dtype != tensor.dtype {
                throw KilnError.invalidInput("input '\(info.name)' has dtype \(tensor.dtype.rawValue) but the model expects \(dtype.rawValue) (\(info.signature))")
            }
            guard let shape = info.shape else { continue }
            guard shape.count == tensor.rank else {
                throw KilnError.invalidInput("input '\(info.name)' has shape \(tensor.shape) (rank \(tensor.rank)) but the model expects rank \(shape.count) (\(info.signature))")
            }
            for (axis, dimension) in shape.enumerated() {
                let size = tensor.shape[axis]
                switch dimension {
                case .fixed(let expectedSize) where expectedSize != size:
                    throw KilnError.invalidInput("input '\(info.name)' has size \(size) on axis \(axis) but the model expects \(expectedSize) (\(info.signature))")
                case .symbolic(let name) where !name.isEmpty:
                    if let seen = symbols[name], seen.size != size {
                        throw KilnError.invalidInput("dimension '\(name)' is \(seen.size) in input '\(seen.input)' but \(size) in input '\(info.name)'; they must agree")
                    }
                    symbols[name] = (size, info.name)
                default:
                    break
                }
            }
        }
    }
}
