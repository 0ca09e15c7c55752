// KernelLauncher: typed launch wrappers for the NVRTC kernels (grid/block choice lives here).
// Pattern: each wrapper packs its arguments into an array of pointers for cuLaunchKernel.
// Safe: argument types match the CUDA signatures in KernelSource one for one (64-bit
// pointers, `long long`, `int`, `float`), checked by the GPU tests against references.
import CKilnCUDA
import Glibc

/// One kernel argument, stored with the width the CUDA signature expects.
enum KernelArgument {
    case pointer(kcu_deviceptr)
    case int32(Int32)
    case int64(Int64)
    case float(Float)
}

/// Launches Kiln's kernels on a stream.
struct KernelLauncher {
    let module: KernelModule
    let stream: kcu_stream
    /// Use the tensor-core attention kernel where it fits (else the fp32 SIMT one).
    var tensorCoreAttention = true
    /// Launch with programmatic dependent launch (CUDAEngineOptions.dependentLaunch): every
    /// kernel in KernelSource waits for its predecessor itself (KILN_GRID_ENTER), so it may be
    /// scheduled while that one drains.
    var dependentLaunch = false
    /// The GPU's SM count: how many blocks cover it (KernelSource.tensorCoreAttentionWarps).
    var multiprocessors = 132

    func launch(_ name: String, grid: (Int, Int, Int), block: Int, shared: Int = 0, _ arguments: [KernelArgument]) throws {
        // Every argument gets an 8-byte slot; the driver reads only the declared width.
        let storage = UnsafeMutableRawPointer.allocate(byteCount: max(arguments.count, 1) * 8, alignment: 8)
        defer { storage.deallocate() }
        var pointers = [UnsafeMutableRawPointer?](repeating: nil, count: arguments.count)
        for (index, argument) in arguments.enumerated() {
            let slot = storage + index * 8
            switch argument {
            case .pointer(let value): slot.storeBytes(of: value, as: UInt64.self)
            case .int32(let value): slot.storeBytes(of: value, as: Int32.self)
            case .int64(let value): slot.storeBytes(of: value, as: Int64.self)
            case .float(let value): slot.storeBytes(of: value, as: Float.self)
            }
            pointers[index] = slot
        }
        let launchKernel = dependentLaunch ? kcu_launch_kernel_dependent : kcu_launch_kernel
        let result = pointers.withUnsafeMutableBufferPointer { buffer in
            launchKernel(
                module.function(name), UInt32(grid.0), UInt32(grid.1), UInt32(grid.2), UInt32(block), 1, 1, UInt32(shared),
                stream, buffer.baseAddress)
        }
        try checkDriver(result, "cuLaunchKernel(\(name))")
    }

    /// Blocks for a grid-stride elementwise kernel over `count` elements.
    static func elementwiseGrid(_ count: Int) -> Int { max(1, min((count + 255) / 256, 65_535)) }

    func gatherRows(table: kcu_deviceptr, indices: kcu_deviceptr, output: kcu_deviceptr, rows: Int, width: Int) throws {
        try launch("kiln_gather_rows", grid: (rows, 1, 1), block: min(256, max(32, width)),
                   [.pointer(table), .pointer(indices), .pointer(output), .int32(Int32(rows)), .int32(Int32(width))])
    }

    func addBroadcast(_ a: kcu_deviceptr, _ b: kcu_deviceptr, output: kcu_deviceptr, count: Int, bCount: Int) throws {
        try launch("kiln_add_broadcast", grid: (Self.elementwiseGrid(count), 1, 1), block: 256,
                   [.pointer(a), .pointer(b), .pointer(output), .int64(Int64(count)), .int64(Int64(bCount))])
    }

    func layerNorm(x: kcu_deviceptr, skip: kcu_deviceptr, bias: kcu_deviceptr, gamma: kcu_deviceptr, beta: kcu_deviceptr,
                   output: kcu_deviceptr, output32: kcu_deviceptr = 0, sumOutput: kcu_deviceptr, rows: Int, width: Int, epsilon: Float) throws {
        let aligned = [x, skip, output, sumOutput].allSatisfy { $0 % 4 == 0 }
        let arguments: [KernelArgument] = [
            .pointer(x), .pointer(skip), .pointer(bias), .pointer(gamma), .pointer(beta), .pointer(output),
            .pointer(output32), .pointer(sumOutput), .int32(Int32(rows)), .int32(Int32(width)), .float(epsilon)]
        let aligned16 = [x, skip, output, sumOutput, bias, gamma, beta, output32].allSatisfy { $0 % 16 == 0 }
        if KernelSource.vectorLayerNormFits(width: width) && aligned16 {
            // 16-byte accesses, every load of a row up front; one row per block for few rows
            // (spread over more SMs), 4 per block for many (H100, width 768: 32 rows 2.58 us vs
            // 3.86 for the prefetching kernel; 8192 rows 16.3 us vs 23.4 for the 8-row one).
            if rows <= KernelSource.layerNormSpreadRows {
                try launch("kiln_layer_norm_warp8", grid: (rows, 1, 1), block: 32, arguments)
            } else {
                try launch("kiln_layer_norm_warp8", grid: ((rows + 3) / 4, 1, 1), block: 128, arguments)
            }
            return
        }
        if KernelSource.warpLayerNormFits(width: width) && aligned {
            // A few rows (batch 1-16 at seq 32): latency-bound, so one row per block (the rows
            // spread over as many SMs) and every load issued up front (8-byte fp32 pairs). Many
            // rows: 8 rows per block, fewer registers.
            if rows <= KernelSource.layerNormSpreadRows && [bias, gamma, beta, output32].allSatisfy({ $0 % 8 == 0 }) {
                try launch("kiln_layer_norm_warp_prefetch", grid: (rows, 1, 1), block: 32, arguments)
            } else {
                try launch("kiln_layer_norm_warp", grid: ((rows + 7) / 8, 1, 1), block: 256, arguments)
            }
            return
        }
        try launch("kiln_layer_norm", grid: (rows, 1, 1), block: KernelSource.layerNormThreads, shared: width * 4,
                   [.pointer(x), .pointer(skip), .pointer(bias), .pointer(gamma), .pointer(beta), .pointer(output),
                    .pointer(output32), .pointer(sumOutput), .int32(Int32(width)), .float(epsilon)])
    }

    func gelu(_ x: kcu_deviceptr, output: kcu_deviceptr, count: Int, tanh: Bool) throws {
        try launch("kiln_gelu", grid: (Self.elementwiseGrid(count), 1, 1), block: 256,
                   [.pointer(x), .pointer(output), .int64(Int64(count)), .int32(tanh ? 1 : 0)])
    }

    func biasGelu(_ x: kcu_deviceptr, bias: kcu_deviceptr, count: Int, width: Int) throws {
        if width % 8 == 0, x % 16 == 0, bias % 16 == 0 {
            let vectors = count / 8
            try launch("kiln_bias_gelu8", grid: (max(1, min((vectors + 255) / 256, 1 << 20)), 1, 1), block: 256,
                       [.pointer(x), .pointer(bias), .int64(Int64(vectors)), .int32(Int32(width / 8))])
            return
        }
        let rows = count / max(width, 1)
        try launch("kiln_bias_gelu", grid: (max(1, min(rows, 65_535)), 1, 1), block: 256,
                   [.pointer(x), .pointer(bias), .int32(Int32(rows)), .int32(Int32(width))])
    }

    /// int8 levels of fp16 `input` rows (`inputStride` apart) for an INT8 GEMM, contiguous out.
    func quantizeS8(_ input: kcu_deviceptr, output: kcu_deviceptr, rows: Int, width: Int, inputStride: Int, scale: Float) throws {
        try launch("kiln_quantize_s8", grid: (max(1, min(rows, 65_535)), 1, 1), block: min(256, max(32, width / 4)),
                   [.pointer(input), .pointer(output), .int32(Int32(rows)), .int32(Int32(width)), .int64(Int64(inputStride)), .float(1 / scale)])
    }

    /// INT8 GEMM epilogue: int32 accumulators to `act(acc · multipliers + bias)` in fp16 or fp32.
    func dequantizeS32(_ accumulators: kcu_deviceptr, multipliers: kcu_deviceptr, bias: kcu_deviceptr, output: kcu_deviceptr, f32: Bool,
                       rows: Int, width: Int, activationCode: Int) throws {
        try launch("kiln_dequant_s32", grid: (max(1, min(rows, 65_535)), 1, 1), block: min(256, max(32, width / 4)),
                   [.pointer(accumulators), .pointer(multipliers), .pointer(bias), .pointer(f32 ? 0 : output), .pointer(f32 ? output : 0),
                    .int32(Int32(rows)), .int32(Int32(width)), .int32(Int32(activationCode))])
    }

    func convert(f32 input: kcu_deviceptr, toF16 output: kcu_deviceptr, count: Int) throws {
        try launch("kiln_f32_to_f16", grid: (Self.elementwiseGrid(count), 1, 1), block: 256,
                   [.pointer(input), .pointer(output), .int64(Int64(count))])
    }

    func convert(f16 input: kcu_deviceptr, toF32 output: kcu_deviceptr, count: Int) throws {
        try launch("kiln_f16_to_f32", grid: (Self.elementwiseGrid(count), 1, 1), block: 256,
                   [.pointer(input), .pointer(output), .int64(Int64(count))])
    }

    /// fp32 `a op b` over a 4-axis output shape with per-operand element strides (0 = broadcast).
    func binaryF32(_ a: kcu_deviceptr, _ b: kcu_deviceptr, output: kcu_deviceptr, op: Int, shape: [Int], aStrides: [Int], bStrides: [Int]) throws {
        let count = shape.reduce(1, *)
        try launch("kiln_binary_f32", grid: (Self.elementwiseGrid(count), 1, 1), block: 256,
                   [.pointer(a), .pointer(b), .pointer(output), .int64(Int64(count)), .int32(Int32(op)),
                    .int32(Int32(shape[1])), .int32(Int32(shape[2])), .int32(Int32(shape[3]))]
                   + aStrides.map { .int64(Int64($0)) } + bStrides.map { .int64(Int64($0)) })
    }

    func copyRows(_ input: kcu_deviceptr, output: kcu_deviceptr, rows: Int, width: Int, inputStride: Int, f32: Bool = false) throws {
        try launch(f32 ? "kiln_copy_rows_f32" : "kiln_copy_rows", grid: (rows, 1, 1), block: min(256, max(32, width)),
                   [.pointer(input), .pointer(output), .int32(Int32(rows)), .int32(Int32(width)), .int64(Int64(inputStride))])
    }

    /// Attention over `[batch, seq, heads * headSize]` rows `qkvStride` apart.
    func attention(q: kcu_deviceptr, k: kcu_deviceptr, v: kcu_deviceptr, qkvStride: Int, mask: kcu_deviceptr,
                   maskStrides: (batch: Int, head: Int, row: Int), output: kcu_deviceptr, outputStride: Int,
                   batch: Int, sequence: Int, heads: Int, headSize: Int, scale: Float, nanToZero: Bool) throws {
        if tensorCoreAttention && KernelSource.tensorCoreAttentionFits(headSize: headSize, sequence: sequence)
            && KernelSource.tensorCoreAttentionAligned(q: q, k: k, v: v, qkvStride: qkvStride) {
            let warps = KernelSource.tensorCoreAttentionWarps(batch: batch, heads: heads, sequence: sequence,
                                                                    multiprocessors: multiprocessors)
            let tiles = sequence / 16
            try launch("kiln_attention_mma\(headSize)", grid: (heads, batch, (tiles + warps - 1) / warps), block: warps * 32,
                       shared: KernelSource.tensorCoreAttentionSharedBytes(sequence: sequence, headSize: headSize),
                       [.pointer(q), .pointer(k), .pointer(v), .int64(Int64(qkvStride)), .pointer(mask),
                        .int64(Int64(maskStrides.batch)), .int64(Int64(maskStrides.head)), .int64(Int64(maskStrides.row)),
                        .pointer(output), .int64(Int64(outputStride)), .int32(Int32(sequence)), .float(scale), .int32(nanToZero ? 1 : 0)])
            return
        }
        let rows = KernelSource.attentionRows(batch: batch, heads: heads, sequence: sequence)
        try launch("kiln_attention", grid: (heads, batch, (sequence + rows - 1) / rows), block: KernelSource.attentionWarps * 32,
                   shared: KernelSource.attentionSharedBytes(sequence: sequence, headSize: headSize),
                   [.pointer(q), .pointer(k), .pointer(v), .int64(Int64(qkvStride)), .pointer(mask),
                    .int64(Int64(maskStrides.batch)), .int64(Int64(maskStrides.head)), .int64(Int64(maskStrides.row)),
                    .pointer(output), .int64(Int64(outputStride)), .int32(Int32(sequence)), .int32(Int32(headSize)),
                    .float(scale), .int32(nanToZero ? 1 : 0), .int32(Int32(rows))])
    }
}
