// CUDAExecutor: walks the bound steps for one run, keeping each value on the host or the GPU.
// Pattern: all device work is queued on one stream with activations bump-allocated from the
// engine's arena; host values go up through the pinned staging arena with async copies; a host
// step that needs a device value synchronises and copies it down. A capture run (device work
// recorded into a CUDA graph) also records its pinned staging writes
// (which host value went to which pinned address, as what) and the steps that ran on the host,
// so a graph replay redoes only those (`replayHostSide`) instead of walking every step.
import CKilnCUDA
import Dispatch
import KilnCore

/// Evaluates a node on the host (the reference kernels), injected so KilnCUDA needs only KilnCore.
public typealias HostEvaluator = @Sendable (_ node: Node, _ inputs: [Tensor?], _ opset: Int) throws -> [Tensor]

final class CUDAExecutor {
    let stream: kcu_stream
    let launcher: KernelLauncher
    let gemm: CuBLASLtGemm
    let arena: DeviceArena
    let pinned: PinnedArena
    let host: HostEvaluator
    let opset: Int
    /// Values produced in fp32 (graph outputs, what host steps read, the NLU heads' inputs).
    let wantsF32: Set<String>
    let maxAttentionSequence: Int
    /// Run erf-GELU GEMMs with cuBLASLt's tanh-GELU epilogue (one kernel instead of two).
    var geluInEpilogue = false
    /// The skinny GEMM's workspace when the engine uses it (fp16 GEMMs of up to 64 rows).
    var skinny: SkinnyGemmWorkspace?
    let initializers: [String: Tensor]
    /// Index of the step that first needed a download (ends the capturable prefix).
    private(set) var firstDownloadStep: Int?
    /// When non-nil (a capture run), every pinned staging write is appended here.
    var stagingLog: [StagedInput]?
    /// Indices of the steps that ran on the host in this run, in order.
    private(set) var hostStepsRun: [Int] = []
    private var currentStep = 0
    var values: [String: RunValue] = [:]

    init(stream: kcu_stream, launcher: KernelLauncher, gemm: CuBLASLtGemm, arena: DeviceArena, pinned: PinnedArena,
         host: @escaping HostEvaluator, opset: Int, wantsF32: Set<String>, maxAttentionSequence: Int, initializers: [String: Tensor]) {
        self.initializers = initializers
        self.stream = stream
        self.launcher = launcher
        self.gemm = gemm
        self.arena = arena
        self.pinned = pinned
        self.host = host
        self.opset = opset
        self.wantsF32 = wantsF32
        self.maxAttentionSequence = maxAttentionSequence
    }

    // MARK: running steps

    /// With a profile, each step is bracketed by events (eager runs only) and its GPU time added
    /// to the step's operator, to see where time goes (KILN_CUDA_PROFILE=1 in the probe).
    var profile: StepProfile?

    func run(_ steps: ArraySlice<CUDAStep>, offset: Int) throws {
        for (index, step) in zip(steps.indices, steps) {
            currentStep = index + offset
            try profile?.begin(stream)
            if try !runOnDevice(step) {
                try runOnHost(step.node)
                hostStepsRun.append(currentStep)
            }
            try profile?.end(step.node, stream)
        }
    }

    private func runOnHost(_ node: Node) throws {
        let inputs = try node.inputs.map { $0.isEmpty ? nil : try hostTensor($0) }
        let outputs = try host(node, inputs, opset)
        for (name, tensor) in zip(node.outputs, outputs) where !name.isEmpty { values[name] = .host(tensor) }
    }

    /// Runs `step` on the GPU; false when its tensors are outside what the kernels handle.
    private func runOnDevice(_ step: CUDAStep) throws -> Bool {
        let node = step.node
        switch step.kind {
        case .host: return false
        case .gemm(let weights): return try gemmStep(node, weights)
        case .int8Gemm(let weights): return try int8GemmStep(node, weights)
        case let .attention(heads, scale, nanToZero): return try attentionStep(node, heads: heads, scale: scale, nanToZero: nanToZero)
        case let .layerNorm(epsilon, gamma, beta, bias, withSkip):
            return try layerNormStep(node, epsilon: epsilon, gamma: gamma, beta: beta, bias: bias, withSkip: withSkip)
        case .gelu(let tanh):
            guard isDevice(node.inputs[0]) else { return false }
            let x = try deviceHalf(node.inputs[0])
            let out = try allocate(x.shape, .f16)
            try launcher.gelu(x.address, output: out.address, count: x.count, tanh: tanh)
            values[node.outputs[0]] = .device(out)
            return true
        case let .embedding(table, rows, width): return try embeddingStep(node, table: table, rows: rows, width: width)
        case let .selectRow(axis, index): return try selectRowStep(node, axis: axis, index: index)
        case .split(let sizes): return splitStep(node, sizes: sizes)
        case .binary(let op): return try binaryStep(node, op)
        }
    }

    private func isDevice(_ name: String) -> Bool {
        if case .device = values[name] { return true }
        return false
    }

    /// A value computed in this run, or a constant of the graph.
    private func lookup(_ name: String) -> RunValue? {
        values[name] ?? initializers[name].map(RunValue.host)
    }

    private func gemmStep(_ node: Node, _ w: GemmWeights) throws -> Bool {
        let outF32 = wantsF32.contains(node.outputs[0])
        if outF32, let weights32 = w.weights32 { return try headGemmStep(node, w, weights32: weights32) }
        var a = try deviceHalf(node.inputs[0], allowStrided: true)
        guard a.width == w.k, a.rows > 0 else { return false }
        if a.rank > 2 && !a.isContiguous { a = try contiguous(a) }
        if !outF32, let skinny, let weightsT = w.weightsT, let activation = Int8GemmWeights.activationCodes[w.activation],
           SkinnyGemmWorkspace.fits(rows: a.rows, n: w.n, k: w.k, lda: a.rowStride), a.address % 16 == 0 {
            let out = try allocate(Array(a.shape.dropLast()) + [w.n], .f16)
            try launcher.skinnyGemm(input: a.address, lda: a.rowStride, weightsT: weightsT.address, bias: w.bias16?.address ?? 0,
                                    output: out.address, rows: a.rows, n: w.n, k: w.k, activation: Int32(activation), workspace: skinny)
            values[node.outputs[0]] = .device(out)
            return true
        }
        // erf GELU: a separate bias+GELU kernel, or (geluInEpilogue) cuBLASLt's tanh-form GELU
        // epilogue, which differs from erf GELU by < 5e-4, under fp16 rounding of its inputs.
        let tanhEpilogue = w.activation == "gelu" && geluInEpilogue && w.bias16 != nil && !outF32
        let fusedGelu = w.activation == "gelu" && !tanhEpilogue
        if outF32 && fusedGelu { return false }
        let epilogue: GemmEpilogue
        switch (w.activation, w.bias16 != nil) {
        case ("gelu", true) where tanhEpilogue: epilogue = .geluTanhBias
        case ("none", true): epilogue = .bias
        case ("none", false), ("gelu", _): epilogue = .none
        case ("gelu_tanh", true): epilogue = .geluTanhBias
        case ("relu", true): epilogue = .reluBias
        default: return false
        }
        let out = try allocate(Array(a.shape.dropLast()) + [w.n], outF32 ? .f32 : .f16)
        let bias = (outF32 ? w.bias32 : w.bias16)?.address ?? 0
        try gemm.run(GemmShape(m: a.rows, n: w.n, k: w.k, lda: a.rowStride, outputF32: outF32, epilogue: epilogue),
                     input: a.address, weights: w.weights.address, bias: bias, output: out.address, stream: stream)
        if fusedGelu {
            if let bias16 = w.bias16 {
                try launcher.biasGelu(out.address, bias: bias16.address, count: out.count, width: w.n)
            } else {
                try launcher.gelu(out.address, output: out.address, count: out.count, tanh: false)
            }
        }
        values[node.outputs[0]] = .device(out)
        return true
    }

    /// An INT8 FusedMatMul: quantize the fp16 input with the static scale, s8 x s8 -> s32 on the
    /// tensor cores, then dequantize + bias + activation into fp16 (fp32 where wanted).
    private func int8GemmStep(_ node: Node, _ w: Int8GemmWeights) throws -> Bool {
        guard isDevice(node.inputs[0]) else { return false }
        let a = try deviceHalf(node.inputs[0], allowStrided: true)
        guard a.width == w.k, a.rows > 0 else { return false }
        let outF32 = wantsF32.contains(node.outputs[0])
        let levels = try allocate([a.rows, w.k], .i8)
        try launcher.quantizeS8(a.address, output: levels.address, rows: a.rows, width: w.k, inputStride: a.rowStride, scale: w.inputScale)
        let accumulators = try allocate([a.rows, w.n], .i32)
        try gemm.run(GemmShape(m: a.rows, n: w.n, k: w.k, lda: w.k, outputF32: false, epilogue: .none, int8: true),
                     input: levels.address, weights: w.levels.address, bias: 0, output: accumulators.address, stream: stream)
        let out = try allocate(Array(a.shape.dropLast()) + [w.n], outF32 ? .f32 : .f16)
        try launcher.dequantizeS32(accumulators.address, multipliers: w.multipliers.address, bias: w.bias?.address ?? 0, output: out.address,
                                   f32: outF32, rows: a.rows, width: w.n, activationCode: w.activationCode)
        values[node.outputs[0]] = .device(out)
        return true
    }

    /// A GEMM whose output leaves the device (an NLU head): fp32 operands and output.
    private func headGemmStep(_ node: Node, _ w: GemmWeights, weights32: DeviceBuffer) throws -> Bool {
        guard w.activation == "none" else { return false }
        var a = try deviceFloat(node.inputs[0], allowStrided: true)
        guard a.width == w.k, a.rows > 0 else { return false }
        if a.rank > 2 && !a.isContiguous { a = try contiguous(a) }
        let out = try allocate(Array(a.shape.dropLast()) + [w.n], .f32)
        try gemm.run(GemmShape(m: a.rows, n: w.n, k: w.k, lda: a.rowStride, outputF32: true, epilogue: w.bias32 == nil ? .none : .bias, inputF32: true),
                     input: a.address, weights: weights32.address, bias: w.bias32?.address ?? 0, output: out.address, stream: stream)
        values[node.outputs[0]] = .device(out)
        return true
    }

    private func attentionStep(_ node: Node, heads: Int, scale: Float?, nanToZero: Bool) throws -> Bool {
        guard node.inputs.count >= 3, [0, 1, 2].allSatisfy({ isDevice(node.inputs[$0]) }) else { return false }
        var q = try deviceHalf(node.inputs[0], allowStrided: true)
        var k = try deviceHalf(node.inputs[1], allowStrided: true)
        var v = try deviceHalf(node.inputs[2], allowStrided: true)
        guard q.rank == 3, k.shape == q.shape, v.shape == q.shape, q.width % heads == 0, q.shape[1] <= maxAttentionSequence else { return false }
        if k.rowStride != q.rowStride || v.rowStride != q.rowStride {
            (q, k, v) = (try contiguous(q), try contiguous(k), try contiguous(v))
        }
        let (batch, sequence, hidden) = (q.shape[0], q.shape[1], q.shape[2])
        let headSize = hidden / heads
        // The kernel moves fp16 pairs (4-byte accesses).
        guard headSize % 2 == 0, q.rowStride % 2 == 0, [q.address, k.address, v.address].allSatisfy({ $0 % 4 == 0 }) else { return false }
        var maskAddress: kcu_deviceptr = 0
        var strides = (batch: 0, head: 0, row: 0)
        if node.inputs.count > 3 && !node.inputs[3].isEmpty {
            let mask = try hostTensor(node.inputs[3])
            guard mask.dtype == .float32, let found = maskStrides(mask.shape, batch: batch, heads: heads, sequence: sequence) else { return false }
            strides = found
            maskAddress = try upload(mask.floats, source: node.inputs[3]).address
        }
        let out = try allocate(q.shape, .f16)
        try launcher.attention(
            q: q.address, k: k.address, v: v.address, qkvStride: q.rowStride, mask: maskAddress, maskStrides: strides,
            output: out.address, outputStride: hidden, batch: batch, sequence: sequence, heads: heads, headSize: headSize,
            scale: scale ?? 1 / Float(headSize).squareRoot(), nanToZero: nanToZero)
        values[node.outputs[0]] = .device(out)
        return true
    }

    private func layerNormStep(_ node: Node, epsilon: Float, gamma: DeviceBuffer, beta: DeviceBuffer?, bias: DeviceBuffer?, withSkip: Bool) throws -> Bool {
        guard isDevice(node.inputs[0]) || (withSkip && isDevice(node.inputs[1])) else { return false }
        let x = try deviceHalf(node.inputs[0])
        guard gamma.byteCount == x.width * 4 else { return false }
        var skipAddress: kcu_deviceptr = 0
        if withSkip {
            let skip = try deviceHalf(node.inputs[1])
            guard skip.shape == x.shape else { return false }
            skipAddress = skip.address
        }
        let outF32 = wantsF32.contains(node.outputs[0])
        let out = try allocate(x.shape, outF32 ? .f32 : .f16)
        let wantsSum = withSkip && node.outputs.count > 1 && !node.outputs[1].isEmpty
        let sum = wantsSum ? try allocate(x.shape, .f16) : nil
        try launcher.layerNorm(
            x: x.address, skip: skipAddress, bias: bias?.address ?? 0, gamma: gamma.address, beta: beta?.address ?? 0,
            output: outF32 ? 0 : out.address, output32: outF32 ? out.address : 0, sumOutput: sum?.address ?? 0,
            rows: x.rows, width: x.width, epsilon: epsilon)
        values[node.outputs[0]] = .device(out)
        if let sum { values[node.outputs[1]] = .device(sum) }
        return true
    }

    private func embeddingStep(_ node: Node, table: DeviceBuffer, rows: Int, width: Int) throws -> Bool {
        let indices = try hostTensor(node.inputs[1])
        guard indices.dtype.isInteger else { return false }
        let count = indices.count
        let source = StagedInput.Source.indices(value: node.inputs[1], rows: rows, node: node.name)
        let staged = try stage(bytes: count * 4, source: source) { try Self.writeIndices(indices, rows: rows, node: node.name, into: $0) }
        let deviceIndices = try allocate([count], .i32)
        try copyUp(staged, to: deviceIndices.address, bytes: count * 4)
        let out = try allocate(indices.shape + [width], .f16)
        if count > 0 {
            try launcher.gatherRows(table: table.address, indices: deviceIndices.address, output: out.address, rows: count, width: width)
        }
        values[node.outputs[0]] = .device(out)
        return true
    }

    private func selectRowStep(_ node: Node, axis: Int, index: Int) throws -> Bool {
        guard case .device(let data) = values[node.inputs[0]], data.dtype != .i32, data.rank == 3, axis == 1 || axis == -2 else { return false }
        let sequence = data.shape[1]
        let row = index < 0 ? index + sequence : index
        guard row >= 0 && row < sequence else { return false }
        let source = data.isContiguous ? data : try contiguous(data)
        values[node.outputs[0]] = .device(DeviceTensor(
            address: source.address + UInt64(row * source.width * data.dtype.byteSize), shape: [data.shape[0], data.shape[2]],
            dtype: data.dtype, rowStride: sequence * source.width))
        return true
    }

    private func splitStep(_ node: Node, sizes: [Int]) -> Bool {
        guard case .device(let data) = values[node.inputs[0]], data.dtype == .f16, sizes.reduce(0, +) == data.width,
              sizes.count == node.outputs.count
        else { return false }
        var offset = 0
        for (name, size) in zip(node.outputs, sizes) {
            values[name] = .device(DeviceTensor(
                address: data.address + UInt64(offset * 2), shape: Array(data.shape.dropLast()) + [size], dtype: .f16, rowStride: data.rowStride))
            offset += size
        }
        return true
    }

    /// Add/Sub/Mul with at least one device operand: fp16 for a suffix-broadcast Add inside the
    /// network, fp32 with general broadcasting otherwise (the output-side masking, head sums).
    private func binaryStep(_ node: Node, _ op: BinaryOperator) throws -> Bool {
        guard node.inputs.count == 2, isDevice(node.inputs[0]) || isDevice(node.inputs[1]),
              let aShape = shape(of: node.inputs[0]), let bShape = shape(of: node.inputs[1]),
              let outShape = broadcastShape(aShape, bShape), outShape.count <= 4
        else { return false }
        let f32 = wantsF32.contains(node.outputs[0]) || op != .add || isFloat32(node.inputs[0]) || isFloat32(node.inputs[1])
        if !f32 {
            var a = try deviceHalf(node.inputs[0])
            var b = try deviceHalf(node.inputs[1])
            if b.count > a.count { swap(&a, &b) }
            if b.count > 0, a.shape == outShape, isSuffixBroadcast(b.shape, of: a.shape) {
                let out = try allocate(outShape, .f16)
                try launcher.addBroadcast(a.address, b.address, output: out.address, count: a.count, bCount: b.count)
                values[node.outputs[0]] = .device(out)
                return true
            }
        }
        let a = try deviceFloat(node.inputs[0]), b = try deviceFloat(node.inputs[1])
        let out = try allocate(outShape, .f32)
        let padded = [Int](repeating: 1, count: 4 - outShape.count) + outShape
        if out.count > 0 {
            try launcher.binaryF32(a.address, b.address, output: out.address, op: op.rawValue, shape: padded,
                                   aStrides: broadcastStrides(a.shape, to: padded), bStrides: broadcastStrides(b.shape, to: padded))
        }
        values[node.outputs[0]] = .device(out)
        return true
    }

    private func shape(of name: String) -> [Int]? {
        switch lookup(name) {
        case .device(let tensor): return tensor.shape
        case .host(let tensor): return tensor.dtype.isFloatingPoint ? tensor.shape : nil
        case nil: return nil
        }
    }

    private func isFloat32(_ name: String) -> Bool {
        if case .device(let tensor) = values[name] { return tensor.dtype == .f32 }
        return false
    }

    /// Numpy broadcasting of two shapes, or nil when they do not broadcast.
    private func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int]? {
        let rank = max(a.count, b.count)
        let pa = [Int](repeating: 1, count: rank - a.count) + a, pb = [Int](repeating: 1, count: rank - b.count) + b
        var out: [Int] = []
        for (x, y) in zip(pa, pb) {
            guard x == y || x == 1 || y == 1 else { return nil }
            out.append(x == 1 ? y : x)
        }
        return out
    }

    /// Element strides of a contiguous `shape` read as the 4-axis `target` (0 on broadcast axes).
    private func broadcastStrides(_ shape: [Int], to target: [Int]) -> [Int] {
        let full = [Int](repeating: 1, count: 4 - shape.count) + shape
        let strides = Tensor.strides(of: full)
        return (0..<4).map { full[$0] == 1 && target[$0] != 1 ? 0 : strides[$0] }
    }

    /// True when `small` (leading 1s dropped) equals the trailing axes of `large`.
    private func isSuffixBroadcast(_ small: [Int], of large: [Int]) -> Bool {
        let trimmed = Array(small.drop(while: { $0 == 1 }))
        return trimmed.count <= large.count && Array(large.suffix(trimmed.count)) == trimmed
    }

    // MARK: moving values

    func allocate(_ shape: [Int], _ dtype: DeviceDType) throws -> DeviceTensor {
        let bytes = Tensor.elementCount(of: shape) * dtype.byteSize
        return DeviceTensor(address: try arena.allocate(bytes), shape: shape, dtype: dtype)
    }

    /// Writes `bytes` into the pinned arena (graphs read staging memory at launch);
    /// a capture run logs the write so replays can redo it from their own inputs.
    private func stage(bytes: Int, source: StagedInput.Source, _ fill: (UnsafeMutableRawBufferPointer) throws -> Void) throws -> UnsafeMutableRawPointer {
        let pointer = try pinned.allocate(bytes)
        try fill(UnsafeMutableRawBufferPointer(start: pointer, count: bytes))
        stagingLog?.append(StagedInput(source: source, pointer: pointer, bytes: bytes))
        return pointer
    }

    /// Token ids as int32 row indices (negative ids count from the end, as Gather does); an id
    /// outside the table is the request's error.
    private static func writeIndices(_ indices: Tensor, rows: Int, node: String, into buffer: UnsafeMutableRawBufferPointer) throws {
        let out = buffer.bindMemory(to: Int32.self)
        for (position, value) in indices.ints.enumerated() {
            let index = value < 0 ? value + Int64(rows) : value
            guard index >= 0 && index < Int64(rows) else {
                throw KilnError.invalidInput("Gather \(node): index \(value) is out of range for \(rows) rows")
            }
            out[position] = Int32(index)
        }
    }

    // MARK: graph replay

    /// Redoes the host side of a captured run for this run's inputs: the steps that ran on the
    /// host, then every logged staging write at its captured pinned address; device values of the
    /// prefix are restored from the capture (same arena addresses) for the steps after it.
    /// Returns the microseconds spent in the host steps and in restaging.
    func replayHostSide(_ steps: [CUDAStep], program: ReplayProgram) throws -> (hostSteps: Double, staging: Double) {
        let started = DispatchTime.now().uptimeNanoseconds
        for index in program.hostSteps {
            currentStep = index
            try runOnHost(steps[index].node)
        }
        let staging = DispatchTime.now().uptimeNanoseconds
        for entry in program.staging { try restage(entry) }
        for (name, tensor) in program.deviceValues where values[name] == nil { values[name] = .device(tensor) }
        let finished = DispatchTime.now().uptimeNanoseconds
        return (Double(staging - started) / 1e3, Double(finished - staging) / 1e3)
    }

    private func restage(_ entry: StagedInput) throws {
        let buffer = UnsafeMutableRawBufferPointer(start: entry.pointer, count: entry.bytes)
        switch entry.source {
        case let .indices(name, rows, node):
            let indices = try capturedHostValue(name, bytes: entry.bytes, elementSize: 4)
            try Self.writeIndices(indices, rows: rows, node: node, into: buffer)
        case .floats(let name):
            let floats = try capturedHostValue(name, bytes: entry.bytes, elementSize: 4).floats
            floats.withUnsafeBytes { buffer.copyMemory(from: $0) }
        case .halves(let name):
            let floats = try capturedHostValue(name, bytes: entry.bytes, elementSize: 2).floats
            HalfPrecision.encode(floats, into: entry.pointer)
        }
    }

    /// A host value a replay restages; its size must match the capture's (same input shape).
    private func capturedHostValue(_ name: String, bytes: Int, elementSize: Int) throws -> Tensor {
        guard case .host(let tensor) = lookup(name), tensor.count * elementSize == bytes else {
            throw CUDAError.unsupported("graph replay: \(name) is not the host value the capture staged")
        }
        return tensor
    }

    /// The device values after a capture run (what a replay restores).
    var deviceValues: [String: DeviceTensor] {
        values.compactMapValues { value in
            if case .device(let tensor) = value { return tensor }
            return nil
        }
    }

    private func copyUp(_ source: UnsafeMutableRawPointer, to destination: kcu_deviceptr, bytes: Int) throws {
        guard bytes > 0 else { return }
        try checkDriver(kcu_memcpy_htod_async(destination, source, bytes, stream), "cuMemcpyHtoDAsync")
    }

    /// Uploads fp32 values (attention masks) of host value `source` through the pinned arena.
    private func upload(_ values: [Float], shape: [Int]? = nil, source: String) throws -> DeviceTensor {
        let bytes = values.count * 4
        let staged = try stage(bytes: bytes, source: .floats(source)) { buffer in values.withUnsafeBytes { buffer.copyMemory(from: $0) } }
        let out = try allocate(shape ?? [values.count], .f32)
        try copyUp(staged, to: out.address, bytes: bytes)
        return out
    }

    /// The value `name` as an fp16 device tensor (contiguous unless `allowStrided`).
    func deviceHalf(_ name: String, allowStrided: Bool = false) throws -> DeviceTensor {
        switch lookup(name) {
        case .device(let tensor) where tensor.dtype == .f16:
            return allowStrided || tensor.isContiguous ? tensor : try contiguous(tensor)
        case .device(let tensor) where tensor.dtype == .f32:
            guard tensor.isContiguous else { throw CUDAError.unsupported("strided fp32 view of \(name)") }
            let source = tensor
            let out = try allocate(tensor.shape, .f16)
            try launcher.convert(f32: source.address, toF16: out.address, count: tensor.count)
            values[name] = .device(out)
            return out
        case .device:
            throw CUDAError.unsupported("\(name) is an integer device tensor where fp16 is needed")
        case .host(let tensor):
            guard tensor.dtype.isFloatingPoint else { throw CUDAError.unsupported("\(name) (\(tensor.dtype)) is not a float tensor") }
            let floats = tensor.floats
            let staged = try stage(bytes: floats.count * 2, source: .halves(name)) { HalfPrecision.encode(floats, into: $0.baseAddress!) }
            let out = try allocate(tensor.shape, .f16)
            try copyUp(staged, to: out.address, bytes: floats.count * 2)
            values[name] = .device(out)
            return out
        case nil:
            throw KilnError.invalidModel("value \(name) is used before it is computed")
        }
    }

    private func contiguous(_ tensor: DeviceTensor) throws -> DeviceTensor {
        let out = try allocate(tensor.shape, tensor.dtype)
        if tensor.count > 0 {
            try launcher.copyRows(tensor.address, output: out.address, rows: tensor.rows, width: tensor.width, inputStride: tensor.rowStride,
                                  f32: tensor.dtype == .f32)
        }
        return out
    }

    /// The value `name` as an fp32 device tensor (contiguous unless `allowStrided`).
    func deviceFloat(_ name: String, allowStrided: Bool = false) throws -> DeviceTensor {
        switch lookup(name) {
        case .device(let tensor) where tensor.dtype == .f32:
            return allowStrided || tensor.isContiguous ? tensor : try contiguous(tensor)
        case .device(var tensor) where tensor.dtype == .f16:
            if !tensor.isContiguous { tensor = try contiguous(tensor) }
            let out = try allocate(tensor.shape, .f32)
            try launcher.convert(f16: tensor.address, toF32: out.address, count: tensor.count)
            return out
        case .device:
            throw CUDAError.unsupported("\(name) is an integer device tensor where fp32 is needed")
        case .host(let tensor):
            guard tensor.dtype.isFloatingPoint else { throw CUDAError.unsupported("\(name) (\(tensor.dtype)) is not a float tensor") }
            return try upload(tensor.floats, shape: tensor.shape, source: name)
        case nil:
            throw KilnError.invalidModel("value \(name) is used before it is computed")
        }
    }

    /// The value `name` on the host; device values are copied down (a synchronisation point).
    func hostTensor(_ name: String) throws -> Tensor {
        switch lookup(name) {
        case .host(let tensor): return tensor
        case .device(var tensor):
            if firstDownloadStep == nil { firstDownloadStep = currentStep }
            if !tensor.isContiguous { tensor = try contiguous(tensor) }
            let bytes = tensor.count * tensor.dtype.byteSize
            let staging = try pinned.allocate(bytes)
            if bytes > 0 { try checkDriver(kcu_memcpy_dtoh_async(staging, tensor.address, bytes, stream), "cuMemcpyDtoHAsync") }
            try checkDriver(kcu_stream_synchronize(stream), "cuStreamSynchronize")
            let result = try decode(name, tensor, staging)
            values[name] = .host(result)
            return result
        case nil:
            throw KilnError.invalidModel("value \(name) is used before it is computed")
        }
    }

    /// Several values on the host (the graph outputs): all copies are queued, then one
    /// synchronisation, instead of one per value.
    func hostTensors(_ names: [String]) throws -> [String: Tensor] {
        var pending: [(name: String, tensor: DeviceTensor, staging: UnsafeMutableRawPointer)] = []
        for name in names {
            guard case .device(var tensor) = lookup(name), tensor.dtype != .i32 else { continue }
            if !tensor.isContiguous { tensor = try contiguous(tensor) }
            let bytes = tensor.count * tensor.dtype.byteSize
            let staging = try pinned.allocate(bytes)
            if bytes > 0 { try checkDriver(kcu_memcpy_dtoh_async(staging, tensor.address, bytes, stream), "cuMemcpyDtoHAsync") }
            pending.append((name, tensor, staging))
        }
        if !pending.isEmpty { try checkDriver(kcu_stream_synchronize(stream), "cuStreamSynchronize") }
        for entry in pending { values[entry.name] = .host(try decode(entry.name, entry.tensor, entry.staging)) }
        var result: [String: Tensor] = [:]
        for name in names { result[name] = try hostTensor(name) }
        return result
    }

    /// A downloaded device tensor as an fp32 host tensor.
    private func decode(_ name: String, _ tensor: DeviceTensor, _ staging: UnsafeMutableRawPointer) throws -> Tensor {
        let floats: [Float] = switch tensor.dtype {
        case .f16: HalfPrecision.decode(staging, count: tensor.count)
        case .f32: Array(UnsafeBufferPointer(start: staging.assumingMemoryBound(to: Float.self), count: tensor.count))
        case .i32, .i8: throw CUDAError.unsupported("\(name) is an integer device tensor")
        }
        return try Tensor(floats: floats, shape: tensor.shape)
    }
}

extension DeviceTensor {
    var rank: Int { shape.count }
}

/// One pinned staging write of a captured run: which host value went to which pinned address.
struct StagedInput {
    enum Source {
        /// Token ids converted to int32 rows of a `rows`-row table (Gather `node`).
        case indices(value: String, rows: Int, node: String)
        /// fp32 values copied as they are.
        case floats(String)
        /// fp32 values converted to fp16.
        case halves(String)
    }
    let source: Source
    let pointer: UnsafeMutableRawPointer
    let bytes: Int
}

/// What a CUDA graph replay does on the host: the captured run's host steps and staging writes,
/// the device values the steps after the graph read, and where the arenas stood after the graph.
struct ReplayProgram {
    var hostSteps: [Int]
    var staging: [StagedInput]
    /// The captured prefix's device values that steps after it, or the outputs, read.
    var deviceValues: [String: DeviceTensor]
    var arenaUsed: Int
    var pinnedUsed: Int
}

/// Strides of an additive mask of `shape` read as `[B, heads, S, S]` with broadcasting (0 on
/// broadcast axes), or nil when its last axis is not the key axis.
func maskStrides(_ shape: [Int], batch: Int, heads: Int, sequence: Int) -> (batch: Int, head: Int, row: Int)? {
    guard shape.count <= 4, shape.last == sequence else { return nil }
    let full = [Int](repeating: 1, count: 4 - shape.count) + shape
    let expected = [batch, heads, sequence, sequence]
    for axis in 0..<4 where full[axis] != 1 && full[axis] != expected[axis] { return nil }
    let strides = Tensor.strides(of: full)
    func stride(_ axis: Int) -> Int { full[axis] == 1 ? 0 : strides[axis] }
    return (stride(0), stride(1), stride(2))
}

/// GPU milliseconds per operator type over profiled runs.
public final class StepProfile: @unchecked Sendable {
    public private(set) var milliseconds: [String: Double] = [:]
    private var start: kcu_event?, end: kcu_event?

    public init() throws {
        try checkDriver(kcu_event_create(&start, 0), "cuEventCreate")
        try checkDriver(kcu_event_create(&end, 0), "cuEventCreate")
    }

    deinit { _ = kcu_event_destroy(start); _ = kcu_event_destroy(end) }

    func begin(_ stream: kcu_stream) throws { try checkDriver(kcu_event_record(start, stream), "cuEventRecord") }

    func end(_ node: Node, _ stream: kcu_stream) throws {
        try checkDriver(kcu_event_record(end, stream), "cuEventRecord")
        try checkDriver(kcu_event_synchronize(end), "cuEventSynchronize")
        var elapsed: Float = 0
        try checkDriver(kcu_event_elapsed_ms(&elapsed, start, end), "cuEventElapsedTime")
        var key = node.domain.isEmpty ? node.opType : node.opType
        if node.opType == KilnOperators.fusedMatMul, let activation = try? node.string("activation", default: "none") { key += "(\(activation))" }
        milliseconds[key, default: 0] += Double(elapsed)
    }
}
