/// What the model declares about a named value: its element type and shape, when known.
public struct ValueInfo: Sendable, Equatable, Codable {
    /// The value's name, unique in the graph.
    public var name: String
    /// The element type, when declared.
    public var dtype: DType?
    /// The shape, when declared (dimensions may be symbolic).
    public var shape: DeclaredShape?

    public init(name: String, dtype: DType?, shape: DeclaredShape?) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
    }

    /// `input_ids: int64[batch, seq]`
    public var signature: String {
        let type = dtype?.rawValue ?? "?"
        let dims = shape?.shapeDescription ?? "[?]"
        return "\(name): \(type)\(dims)"
    }
}
