#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import WireProtocol

/// One fuzz input: reads frames from arbitrary bytes as a receiver would, decodes each payload, and checks
/// that every frame that decodes encodes back to exactly its bytes. A decode error is fine; a crash, a hang or a
/// frame that re-encodes differently is a bug.
func fuzzWireDecoder(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var buffer = ByteBuffer(bytes: UnsafeBufferPointer(start: data, count: size))
    while true {
        let before = buffer
        let frame: Frame?
        do { frame = try Frame.read(from: &buffer, maxPayload: FrameLimits.defaultMaxPayload) } catch { return 0 }
        guard let frame else { return 0 }
        guard let envelope = try? Envelope(decoding: frame) else { continue }
        var encoded = ByteBuffer()
        envelope.write(to: &encoded)
        let original = before.getSlice(at: before.readerIndex, length: buffer.readerIndex - before.readerIndex)!
        precondition(encoded == original, "\(envelope.message.type) decoded but re-encodes differently")
    }
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
exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzWireDecoder(data, size) })
