/// One operator application in the graph.
public struct Node: Sendable, Equatable, Codable {
    /// The node's name (the exporter's, or one Kiln made up when the model left it empty).
    public var name: String
    /// The operator type, e.g. `MatMul`.
    public var opType: String
    /// The operator domain; empty for the default `ai.onnx` domain.
    public var domain: String
    /// Names of the input values; an empty string marks an omitted optional input.
    public var inputs: [String]
    /// Names of the output values; an empty string marks an unused optional output.
    public var outputs: [String]
    /// Attributes by name.
    public var attributes: [String: Attribute]

    public init(
        name: String, opType: String, domain: String = "", inputs: [String], outputs: [String],
        attributes: [String: Attribute] = [:]
    ) {
        self.name = name
        self.opType = opType
        self.domain = domain
        self.inputs = inputs
        self.outputs = outputs
        self.attributes = attributes
    }
}
