// DeviceTensor and the value store of one run: where each graph value lives (host or GPU).
// Views (Split outputs, the CLS row) share their parent's memory with a row stride, so the
// fused QKV GEMM output feeds attention without copies; consumers that need contiguous rows
// materialise them (KernelLauncher.copyRows).
import CKilnCUDA
import KilnCore

/// Element types of device activations.
enum DeviceDType: Sendable {
    case f16, f32, i32
    /// int8 levels (the quantized inputs of INT8 GEMMs).
    case i8
    var byteSize: Int {
        switch self {
        case .f16: 2
        case .i8: 1
        case .f32, .i32: 4
        }
    }
}

/// A tensor in device memory: `shape`, with the rows of the last axis `rowStride` elements apart.
struct DeviceTensor {
    var address: kcu_deviceptr
    var shape: [Int]
    var dtype: DeviceDType
    var rowStride: Int

    init(address: kcu_deviceptr, shape: [Int], dtype: DeviceDType, rowStride: Int? = nil) {
        self.address = address
        self.shape = shape
        self.dtype = dtype
        self.rowStride = rowStride ?? (shape.last ?? 1)
    }

    var width: Int { shape.last ?? 1 }
    var count: Int { Tensor.elementCount(of: shape) }
    var rows: Int { width == 0 ? 0 : count / width }
    var isContiguous: Bool { rowStride == width }
}

/// A graph value during a run.
enum RunValue {
    case host(Tensor)
    case device(DeviceTensor)
}

/// Host-side fp16 conversion (Swift's Float16 is IEEE binary16, the same as CUDA's half).
enum HalfPrecision {
    static func encode(_ values: [Float]) -> [UInt16] { values.map { Float16($0).bitPattern } }

    static func encode(_ values: [Float], into pointer: UnsafeMutableRawPointer) {
        let out = pointer.assumingMemoryBound(to: UInt16.self)
        for index in values.indices { out[index] = Float16(values[index]).bitPattern }
    }

    static func decode(_ pointer: UnsafeRawPointer, count: Int) -> [Float] {
        let input = pointer.assumingMemoryBound(to: UInt16.self)
        return (0..<count).map { Float(Float16(bitPattern: input[$0])) }
    }
}
