import ArgumentParser

/// The `kiln` command-line tool.
@main
struct Kiln: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kiln",
        abstract: "Compile and run BERT-family NLU models (ONNX) on CPU.",
        version: KilnVersion.current,
        subcommands: [BuildCommand.self, CalibrateCommand.self, VerifyCommand.self, InspectCommand.self, RunCommand.self, TokenizeCommand.self, ServeCommand.self, BenchCommand.self, BenchEngineCommand.self, GPUProbeCommand.self]
    )
}

/// Kiln's version, recorded in plan files and printed by `kiln --version`.
enum KilnVersion {
    static let current = "0.1.0"
}
