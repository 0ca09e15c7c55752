// kiln-gpu-probe: a small executable for the GPU machine (built statically here, carried there
// by tools/gpu-check); the same probe runs as the hidden `kiln gpu-probe`. See KilnGPUProbe.
import Foundation
import KilnGPUProbe

exit(GPUProbe.main(Array(CommandLine.arguments.dropFirst())))
