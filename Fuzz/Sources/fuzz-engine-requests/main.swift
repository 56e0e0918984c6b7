#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import EngineRequestFuzzing
import Foundation
import Synchronization

/// Runs `body` to its end from libFuzzer's synchronous callback (or before it): the server, its pools and the
/// client's event loop run on threads of their own meanwhile.
func blocking<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
    let done = DispatchSemaphore(value: 0)
    let result = Mutex<T?>(nil)
    Task {
        let value = await body()
        result.withLock { $0 = value }
        done.signal()
    }
    done.wait()
    return result.withLock { $0 }!
}

/// `-write_seeds=FOLDER`: writes the seed corpus (one file per seed) and exits, without starting anything.
if let argument = CommandLine.arguments.first(where: { $0.hasPrefix("-write_seeds=") }) {
    let folder = URL(fileURLWithPath: String(argument.dropFirst("-write_seeds=".count)))
    do {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for (name, input) in EngineRequestHarness.seeds {
            try Data(input).write(to: folder.appendingPathComponent(name))
        }
        print("\(EngineRequestHarness.seeds.count) seeds in \(folder.path)")
        exit(0)
    } catch {
        FileHandle.standardError.write(Data("fuzz-engine-requests: \(error)\n".utf8))
        exit(1)
    }
}

/// ASan's options for this binary: no leak check. The server's thread pools and the runtime's once-initialised
/// globals live until the process exits, which LeakSanitizer reports as leaks, and libFuzzer's per-input leak
/// check counts the allocations other threads make meanwhile: neither is a leak of a handler.
@_cdecl("__asan_default_options")
func asanDefaultOptions() -> UnsafePointer<CChar> {
    UnsafeRawPointer(("detect_leaks=0" as StaticString).utf8Start).assumingMemoryBound(to: CChar.self)
}

/// Once per process: the store, the adapters and the server (see ``EngineRequestHarness``).
let harness: EngineRequestHarness = {
    let started = blocking { () -> Result<EngineRequestHarness, any Error> in
        do { return .success(try await EngineRequestHarness.start()) } catch { return .failure(error) }
    }
    switch started {
    case .success(let harness): return harness
    case .failure(let error):
        FileHandle.standardError.write(Data("fuzz-engine-requests: could not set up the engine: \(error)\n".utf8))
        exit(1)
    }
}()

/// One fuzz input: its requests through the engine's handlers. A crash in a handler ends the process by
/// itself; what a client saw wrong (a hang, a reply that does not decode) is made one here, so that libFuzzer
/// keeps the input either way.
func fuzzEngineRequests(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    let findings = blocking { await harness.run(input).findings }
    if let finding = findings.first { fatalError("fuzz-engine-requests: \(finding)") }
    return 0
}

/// libFuzzer's driver, called from our own main: SwiftPM gives every executable target a `main`, so the
/// fuzzer runs through `LLVMFuzzerRunDriver` (libFuzzer's documented entry for programs with their own main).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

var argc = CommandLine.argc
var argv = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzEngineRequests(data, size) })
