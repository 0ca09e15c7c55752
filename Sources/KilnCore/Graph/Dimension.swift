/// One dimension of a declared tensor shape: a fixed size or a named symbol such as `batch`.
public enum Dimension: Sendable, Hashable, Codable, CustomStringConvertible {
    /// A size known when the model was exported.
    case fixed(Int)
    /// A size chosen at run time; the name is the exporter's (`batch`, `sequence`, ...) or
    /// empty when the exporter left it anonymous.
    case symbolic(String)

    public var description: String {
        switch self {
        case .fixed(let size): return String(size)
        case .symbolic(let name): return name.isEmpty ? "?" : name
        }
    }

    /// The fixed size, or nil for a symbolic dimension.
    public var fixedSize: Int? {
        if case .fixed(let size) = self { return size }
        return nil
    }
}

/// A declared shape; `nil` rank means the model does not say.
public typealias DeclaredShape = [Dimension]

extension Array where Element == Dimension {
    /// `[batch, seq, 384]`
    public var shapeDescription: String { "[" + map(\.description).joined(separator: ", ") + "]" }
}
