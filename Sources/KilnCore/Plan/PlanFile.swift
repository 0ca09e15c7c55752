import Foundation

/// A compiled engine as stored on disk: header, optimized graph, weights, and named sections
/// that later stages add (memory plan, tuning results...).
public struct Plan: Sendable {
    public var header: PlanHeader
    /// The optimized graph; its initializers are the weights.
    public var graph: Graph
    /// Extra named payloads (e.g. `memory-plan` as JSON).
    public var sections: [String: Data]

    public init(header: PlanHeader, graph: Graph, sections: [String: Data] = [:]) {
        self.header = header
        self.graph = graph
        self.sections = sections
    }
}

/// Reads and writes `.kiln` plan files.
///
/// Layout (little-endian):
/// ```
/// 0   "KILNPLAN"                 magic
/// 8   UInt32 format version
/// 12  UInt32 manifest length L
/// 16  UInt64 FNV-1a checksum of every byte from 24 to the end
/// 24  manifest JSON (L bytes): header, graph without weight data, weight and section index
/// ... zero padding to a 64-byte boundary, then each weight and section, 64-byte aligned
/// ```
/// Everything is validated on load: a plan from another format version, for a CPU that lacks
/// a needed feature, truncated or corrupted is a ``KilnError`` that says what to do.
public enum PlanFile {
    /// The format this Kiln writes and reads.
    public static let formatVersion = 1
    static let magic = Array("KILNPLAN".utf8)
    static let alignment = 64

    /// Writes `plan` to `url`.
    public static func write(_ plan: Plan, to url: URL) throws {
        do { try encode(plan).write(to: url, options: .atomic) } catch let error as KilnError { throw error } catch {
            throw KilnError.io("cannot write plan \(url.path): \(error.localizedDescription)")
        }
    }

    /// Reads and validates the plan at `url` for this machine's CPU.
    public static func read(_ url: URL, cpu: CPUFeatures = .current) throws -> Plan {
        try read(url, cpu: cpu, checkTarget: true)
    }

    /// Reads a plan built for a device target such as `cuda`: magic, version and checksum are
    /// checked here, the device itself by the backend that runs it (it knows the GPU).
    public static func readForDevice(_ url: URL, kind: String) throws -> Plan {
        let plan = try read(url, cpu: CPUFeatures(flags: ["*"]), checkTarget: false)
        guard plan.header.target.kind == kind else {
            throw KilnError.invalidModel("\(url.lastPathComponent) was built for \(plan.header.target.kind) (\(plan.header.target.architecture)), not \(kind): rebuild it with `kiln build --target \(kind)`")
        }
        return plan
    }

    /// Reads only the header (for `kiln inspect`), still checking magic, version and checksum.
    public static func readHeader(_ url: URL) throws -> PlanHeader {
        try read(url, cpu: CPUFeatures(flags: ["*"]), checkTarget: false).header
    }

    /// Reads through one file descriptor, never holding the whole file: the checksum streams
    /// through a small buffer and each fp32 weight is read straight into its tensor's storage,
    /// so loading a plan peaks at about one copy of the weights (a mapped or copied file beside
    /// the decoded weights was twice that, and counted in the peak RSS of `kiln serve`).
    static func read(_ url: URL, cpu: CPUFeatures, checkTarget: Bool) throws -> Plan {
        let file: PlanFileBytes
        do { file = try PlanFileBytes(url) } catch {
            throw KilnError.io("cannot read plan \(url.path): \(error)")
        }
        return try decode(file, cpu: cpu, source: url.lastPathComponent, checkTarget: checkTarget)
    }

    // MARK: - Encoding

    /// Where a weight or section lives in the payload.
    struct BlobEntry: Codable {
        var name: String
        var dtype: DType?
        var shape: [Int]?
        var offset: Int
        var length: Int
    }

    struct Manifest: Codable {
        var header: PlanHeader
        var graphName: String
        var nodes: [Node]
        var valueInfo: [ValueInfo]
        var opsetImports: [String: Int]
        var metadata: [String: String]
        var weights: [BlobEntry]
        var sections: [BlobEntry]
    }

    static func jsonEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return encoder
    }

    static func jsonDecoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return decoder
    }

    /// The bytes of a plan file.
    public static func encode(_ plan: Plan) throws -> Data {
        var blobs: [[UInt8]] = []
        var weights: [BlobEntry] = []
        var sections: [BlobEntry] = []
        var offset = 0
        func place(_ bytes: [UInt8]) -> Int {
            let start = offset
            blobs.append(bytes)
            offset += bytes.count
            let padding = (alignment - offset % alignment) % alignment
            blobs.append([UInt8](repeating: 0, count: padding))
            offset += padding
            return start
        }
        for name in plan.graph.initializers.keys.sorted() {
            let tensor = plan.graph.initializers[name]!
            let bytes = TensorBytes.encode(tensor)
            weights.append(BlobEntry(name: name, dtype: tensor.dtype, shape: tensor.shape, offset: place(bytes), length: bytes.count))
        }
        for name in plan.sections.keys.sorted() {
            let bytes = [UInt8](plan.sections[name]!)
            sections.append(BlobEntry(name: name, dtype: nil, shape: nil, offset: place(bytes), length: bytes.count))
        }
        var header = plan.header
        header.inputs = plan.graph.inputs
        header.outputs = plan.graph.outputs
        let manifest = Manifest(
            header: header, graphName: plan.graph.name, nodes: plan.graph.nodes,
            valueInfo: plan.graph.valueInfo.keys.sorted().map { plan.graph.valueInfo[$0]! },
            opsetImports: plan.graph.opsetImports, metadata: plan.graph.metadata, weights: weights, sections: sections)
        let manifestBytes = [UInt8](try jsonEncoder().encode(manifest))
        var body = manifestBytes
        body.append(contentsOf: [UInt8](repeating: 0, count: (alignment - (24 + body.count) % alignment) % alignment))
        for blob in blobs { body.append(contentsOf: blob) }
        var file = magic
        appendLittleEndian(UInt32(formatVersion), to: &file)
        appendLittleEndian(UInt32(manifestBytes.count), to: &file)
        appendLittleEndian(fnv1a(body), to: &file)
        file.append(contentsOf: body)
        return Data(file)
    }

    // MARK: - Decoding

    /// Parses and validates plan bytes.
    public static func decode(_ data: Data, cpu: CPUFeatures = .current, source: String = "plan") throws -> Plan {
        try decode(data, cpu: cpu, source: source, checkTarget: true)
    }

    static func decode(_ data: Data, cpu: CPUFeatures, source: String, checkTarget: Bool) throws -> Plan {
        try decode(DataPlanBytes(data: data), cpu: cpu, source: source, checkTarget: checkTarget)
    }

    static func decode(_ bytes: some PlanBytes, cpu: CPUFeatures, source: String, checkTarget: Bool) throws -> Plan {
        let size = bytes.count
        guard size >= 24, try bytes.read(0..<8) == magic else {
            throw KilnError.invalidModel("\(source) is not a Kiln plan (bad magic); build one with `kiln build MODEL.onnx -o \(source)`")
        }
        let prefix = try bytes.read(0..<24)
        let version = Int(readLittleEndian(UInt32.self, prefix, at: 8))
        guard version == formatVersion else {
            throw KilnError.invalidModel("\(source) was built for plan format \(version), this kiln reads format \(formatVersion): rebuild it with `kiln build`")
        }
        let manifestLength = Int(readLittleEndian(UInt32.self, prefix, at: 12))
        let checksum = readLittleEndian(UInt64.self, prefix, at: 16)
        guard 24 + manifestLength <= size else {
            throw KilnError.invalidModel("\(source) is truncated (\(size) bytes); rebuild it with `kiln build`")
        }
        guard try streamedChecksum(bytes, from: 24) == checksum else {
            throw KilnError.invalidModel("\(source) is corrupted or truncated (checksum mismatch); rebuild it with `kiln build`")
        }
        let manifest: Manifest
        do { manifest = try jsonDecoder().decode(Manifest.self, from: Data(try bytes.read(24..<(24 + manifestLength)))) } catch {
            throw KilnError.invalidModel("\(source) has an unreadable manifest (\(error)); rebuild it with `kiln build`")
        }
        if checkTarget { try validateTarget(manifest.header, cpu: cpu, source: source) }
        let payloadStart = 24 + manifestLength + (alignment - (24 + manifestLength) % alignment) % alignment
        func range(_ entry: BlobEntry) throws -> Range<Int> {
            let start = payloadStart + entry.offset
            guard entry.offset >= 0, entry.length >= 0, start + entry.length <= size else {
                throw KilnError.invalidModel("\(source): '\(entry.name)' lies outside the file; rebuild it with `kiln build`")
            }
            return start..<(start + entry.length)
        }
        var initializers: [String: Tensor] = [:]
        for entry in manifest.weights {
            guard let dtype = entry.dtype, let shape = entry.shape else {
                throw KilnError.invalidModel("\(source): weight '\(entry.name)' has no dtype or shape")
            }
            initializers[entry.name] = try decodeWeight(bytes, range: try range(entry), dtype: dtype, shape: shape)
        }
        var sections: [String: Data] = [:]
        for entry in manifest.sections { sections[entry.name] = Data(try bytes.read(try range(entry))) }
        let graph = Graph(
            name: manifest.graphName, inputs: manifest.header.inputs, outputs: manifest.header.outputs,
            initializers: initializers, nodes: manifest.nodes,
            valueInfo: Dictionary(manifest.valueInfo.map { ($0.name, $0) }, uniquingKeysWith: { $1 }),
            opsetImports: manifest.opsetImports, metadata: manifest.metadata)
        return Plan(header: manifest.header, graph: graph, sections: sections)
    }

    /// FNV-1a of every byte from `start` to the end, read 1 MiB at a time.
    static func streamedChecksum(_ bytes: some PlanBytes, from start: Int) throws -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        var offset = start
        while offset < bytes.count {
            let length = min(chunk.count, bytes.count - offset)
            try chunk.withUnsafeMutableBytes { try bytes.read(offset..<(offset + length), into: UnsafeMutableRawBufferPointer(rebasing: $0[..<length])) }
            for byte in chunk[..<length] {
                hash ^= UInt64(byte)
                hash = hash &* 0x100_0000_01b3
            }
            offset += length
        }
        return hash
    }

    /// One weight: fp32 (nearly all the bytes) is read straight into the tensor's storage on a
    /// little-endian host, every other dtype through ``TensorBytes``.
    static func decodeWeight(_ bytes: some PlanBytes, range: Range<Int>, dtype: DType, shape: [Int]) throws -> Tensor {
        let count = Tensor.elementCount(of: shape)
        guard dtype == .float32, range.count == count * 4, 1.littleEndian == 1 else {
            return try bytes.read(range).withUnsafeBytes { try TensorBytes.decode($0, dtype: dtype, shape: shape) }
        }
        let floats = try [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            try bytes.read(range, into: UnsafeMutableRawBufferPointer(buffer))
            initialized = count
        }
        return try Tensor(floats: floats, shape: shape)
    }

    static func validateTarget(_ header: PlanHeader, cpu: CPUFeatures, source: String) throws {
        guard header.target.kind == "cpu" else {
            throw KilnError.invalidModel("\(source) was built for \(header.target.kind) (\(header.target.architecture)); this engine runs on the CPU: rebuild with `kiln build` (no --target) or run it where that device is")
        }
        let missing = cpu.missing(header.target.requiredFeatures)
        guard missing.isEmpty else {
            throw KilnError.invalidModel("\(source) needs CPU features \(missing.joined(separator: ", ")) that this CPU lacks (built for \(header.target.architecture), precision \(header.precision)); rebuild it on this machine with `kiln build`")
        }
    }

    // MARK: - Bytes

    static func fnv1a<Bytes: Sequence>(_ bytes: Bytes) -> UInt64 where Bytes.Element == UInt8 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return hash
    }

    static func appendLittleEndian<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    static func readLittleEndian<T: FixedWidthInteger>(_: T.Type, _ bytes: [UInt8], at offset: Int) -> T {
        bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
    }
}
