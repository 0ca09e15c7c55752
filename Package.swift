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
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        .target(name: "KilnCore"),
        .target(
            name: "KilnONNX",
            dependencies: ["KilnCore", .product(name: "SwiftProtobuf", package: "swift-protobuf")]
        ),
        .target(name: "KilnKernels", dependencies: ["KilnCore"]),
        .target(name: "KilnRuntime", dependencies: ["KilnCore", "KilnKernels"]),
        .target(name: "KilnText", dependencies: ["KilnCore"]),
        .executableTarget(
            name: "kiln",
            dependencies: [
                "KilnCore", "KilnONNX", "KilnKernels", "KilnRuntime", "KilnText",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "KilnCoreTests", dependencies: ["KilnCore"]),
        .testTarget(name: "KilnONNXTests", dependencies: ["KilnONNX", "KilnRuntime"], resources: []),
        .testTarget(name: "KilnKernelsTests", dependencies: ["KilnKernels"]),
        .testTarget(name: "KilnRuntimeTests", dependencies: ["KilnONNX", "KilnRuntime"]),
        .testTarget(name: "KilnTextTests", dependencies: ["KilnText"]),
    ],
    swiftLanguageModes: [.v6]
)
