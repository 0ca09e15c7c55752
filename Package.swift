// swift-tools-version: 6.1
// Kiln: an inference compiler and server for BERT-family NLU models.
// Targets mirror the architecture in DESIGN.md; dependencies point one way, down.
import PackageDescription

let package = Package(
    name: "Kiln",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "kiln", targets: ["kiln"]),
        .library(name: "KilnCore", targets: ["KilnCore"]),
        .library(name: "KilnONNX", targets: ["KilnONNX"]),
        .library(name: "KilnKernels", targets: ["KilnKernels"]),
        .library(name: "KilnRuntime", targets: ["KilnRuntime"]),
        .library(name: "KilnText", targets: ["KilnText"]),
        .library(name: "KilnPasses", targets: ["KilnPasses"]),
        .library(name: "KilnServe", targets: ["KilnServe"]),
        .executable(name: "kiln-gpu-probe", targets: ["kiln-gpu-probe"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.100.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        .target(name: "KilnCore"),
        .target(
            name: "KilnONNX",
            dependencies: ["KilnCore", .product(name: "SwiftProtobuf", package: "swift-protobuf")]
        ),
        // oneDNN from the system (Debian's libdnnl-dev, installed by scripts/setup).
        .systemLibrary(name: "CDNNL", providers: [.apt(["libdnnl-dev"])]),
        // AVX2+FMA SIMD kernels, chosen at run time by KilnKernels' cpuid dispatch (KernelISA).
        .target(name: "CKilnSIMD"),
        .target(name: "KilnKernels", dependencies: ["KilnCore", "CDNNL", "CKilnSIMD"]),
        .target(name: "KilnPasses", dependencies: ["KilnCore"]),
        .target(name: "KilnRuntime", dependencies: ["KilnCore", "KilnKernels"]),
        // NVIDIA backend: CUDA libraries are dlopen'ed at run time (CKilnCUDA declares the entry points).
        .target(name: "CKilnCUDA", linkerSettings: [.linkedLibrary("dl")]),
        .target(name: "KilnCUDA", dependencies: ["KilnCore", "CKilnCUDA"]),
        // The GPU machine's probe (device info, CUDA vs reference check, engine benchmark): a library
        // so `kiln gpu-probe` (hidden) and the small kiln-gpu-probe executable share it.
        .target(
            name: "KilnGPUProbe",
            dependencies: ["KilnCore", "KilnONNX", "KilnPasses", "KilnKernels", "KilnRuntime", "KilnCUDA", "KilnText", "KilnCalibration"]),
        .executableTarget(name: "kiln-gpu-probe", dependencies: ["KilnGPUProbe"]),
        .target(name: "KilnText", dependencies: ["KilnCore"]),
        .target(name: "KilnEventLoop", dependencies: [.product(name: "NIOCore", package: "swift-nio")]),
        // INT8 calibration, accuracy scoring, sensitivity search (kiln calibrate / verify / build --precision int8).
        .target(name: "KilnCalibration", dependencies: ["KilnCore", "KilnPasses", "KilnRuntime", "KilnText"]),
        .target(
            name: "KilnServe",
            dependencies: [
                "KilnCore", "KilnRuntime", "KilnText", "KilnEventLoop",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        // `kiln bench`: the HTTP load generator (closed/open loop, percentiles, SLA), a library so it is testable.
        .target(
            name: "KilnBench",
            dependencies: [
                "KilnEventLoop",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "kiln",
            dependencies: [
                "KilnCore", "KilnONNX", "KilnKernels", "KilnPasses", "KilnRuntime", "KilnText", "KilnServe", "KilnCalibration", "KilnBench", "KilnCUDA", "KilnGPUProbe",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "KilnCoreTests", dependencies: ["KilnCore"]),
        .testTarget(name: "KilnONNXTests", dependencies: ["KilnONNX", "KilnRuntime"], resources: []),
        .testTarget(name: "KilnKernelsTests", dependencies: ["KilnKernels"]),
        .testTarget(name: "KilnRuntimeTests", dependencies: ["KilnONNX", "KilnRuntime", "KilnPasses"]),
        .testTarget(name: "KilnTextTests", dependencies: ["KilnText"]),
        .testTarget(
            name: "KilnCUDATests", dependencies: ["KilnCUDA", "KilnCore", "KilnONNX", "KilnPasses", "KilnKernels", "KilnRuntime"]),
        .testTarget(name: "KilnCalibrationTests", dependencies: ["KilnCalibration", "KilnONNX", "KilnPasses", "KilnKernels"]),
        .testTarget(name: "KilnPassesTests", dependencies: ["KilnPasses", "KilnONNX", "KilnRuntime"]),
        .testTarget(
            name: "KilnServeTests",
            dependencies: ["KilnServe", "KilnONNX", "KilnEventLoop", .product(name: "HummingbirdTesting", package: "hummingbird")]
        ),
        .testTarget(
            name: "KilnBenchTests",
            dependencies: ["KilnBench", .product(name: "Hummingbird", package: "hummingbird"), .product(name: "NIOCore", package: "swift-nio")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
