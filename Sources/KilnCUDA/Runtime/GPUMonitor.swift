// GPUMonitor: memory and utilization of the GPUs a server runs on, read through NVML
// (libnvidia-ml.so.1, which ships with the NVIDIA driver) at each /metrics scrape.
// Why NVML and not the CUDA driver: utilization exists only there, and NVML reads the whole
// device (every process's memory), as `nvidia-smi` does, without a CUDA context on the calling
// thread. GPUs are matched by PCI bus id, so the CUDA ordinal an engine uses and NVML's own
// index (which ignores CUDA_VISIBLE_DEVICES and CUDA's ordering) can never be confused.
import CKilnCUDA
import Foundation

/// One GPU's reading.
public struct GPUReading: Sendable, Equatable {
    /// The CUDA ordinal the server uses for it.
    public var ordinal: Int
    /// Its name (e.g. `NVIDIA H100 80GB HBM3`) and PCI bus id (`0000:3B:00.0`).
    public var name: String
    public var pciBusID: String
    public var memoryUsedBytes: Double
    public var memoryTotalBytes: Double
    /// Share of the last sample period (1/6 s to 1 s, by driver) in which a kernel ran, 0...1.
    public var utilization: Double
}

/// Reads GPUs through NVML; ``init(ordinals:)`` throws when NVML or the GPUs are missing.
public final class GPUMonitor: @unchecked Sendable {
    // @unchecked: `devices` is set once in init; NVML calls are thread-safe.
    private let devices: [(ordinal: Int, name: String, pciBusID: String, handle: knvml_device)]

    /// Opens NVML and finds the GPUs with these CUDA ordinals.
    /// - Throws: ``CUDAError`` when NVML cannot be opened or a GPU is not known to it.
    public init(ordinals: [Int]) throws {
        try CUDALibraries.load(.nvml)
        var found: [(Int, String, String, knvml_device)] = []
        for ordinal in ordinals {
            let info = try CUDADriver.device(ordinal)
            let busID = try CUDADriver.pciBusID(ordinal)
            var handle: knvml_device?
            let status = knvml_device_by_pci_bus_id(busID, &handle)
            guard status == 0, let handle else {
                throw CUDAError.noDevice("NVML does not know GPU \(ordinal) (PCI \(busID)): nvmlDeviceGetHandleByPciBusId_v2 returned \(status)")
            }
            found.append((ordinal, info.name, busID, handle))
        }
        devices = found
    }

    /// The current memory use and utilization of every monitored GPU (GPUs whose reading fails
    /// are left out: a metric scrape must not fail).
    public func read() -> [GPUReading] {
        devices.compactMap { device in
            var memory = knvml_memory(total: 0, free: 0, used: 0)
            var busy = knvml_utilization(gpu: 0, memory: 0)
            guard knvml_device_memory(device.handle, &memory) == 0, knvml_device_utilization(device.handle, &busy) == 0 else { return nil }
            return GPUReading(ordinal: device.ordinal, name: device.name, pciBusID: device.pciBusID, memoryUsedBytes: Double(memory.used),
                              memoryTotalBytes: Double(memory.total), utilization: Double(busy.gpu) / 100)
        }
    }
}

extension CUDADriver {
    /// The PCI bus id of GPU `ordinal` ("0000:3B:00.0"; call after ``device(_:)`` has checked the ordinal).
    static func pciBusID(_ ordinal: Int) throws -> String {
        var device: kcu_device = 0
        try checkDriver(kcu_device_get(&device, Int32(ordinal)), "cuDeviceGet")
        var busID = [CChar](repeating: 0, count: 64)
        try checkDriver(kcu_device_pci_bus_id(&busID, 63, device), "cuDeviceGetPCIBusId")
        return decodeCString(busID)
    }
}
