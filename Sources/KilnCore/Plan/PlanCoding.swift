/// Tensors are Codable (plan manifests hold small attribute tensors as JSON) through the
/// validating initializer.
extension Tensor: Codable {
    private enum CodingKeys: String, CodingKey { case dtype, shape, storage }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        // Goes through the validating initializer: a corrupted plan cannot build an
        // inconsistent tensor.
        try self.init(
            dtype: try container.decode(DType.self, forKey: .dtype),
            shape: try container.decode([Int].self, forKey: .shape),
            storage: try container.decode(Storage.self, forKey: .storage))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(dtype, forKey: .dtype)
        try container.encode(shape, forKey: .shape)
        try container.encode(storage, forKey: .storage)
    }
}
