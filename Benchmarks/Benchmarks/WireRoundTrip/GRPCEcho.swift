import GRPCCore
import GRPCNIOTransportHTTP2

/// The gRPC peer: a unary echo service over grpc-swift-nio-transport (HTTP/2, plaintext), raw bytes in and out so
/// that no protobuf code is generated or run.
struct RawBytes: MessageSerializer, MessageDeserializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes { Bytes(message) }
    func deserialize<Bytes: GRPCContiguousBytes>(_ bytes: Bytes) throws -> [UInt8] {
        bytes.withUnsafeBytes { Array($0) }
    }
}

struct EchoService: RegistrableRPCService {
    static let get = MethodDescriptor(service: ServiceDescriptor(fullyQualifiedService: "bench.Echo"), method: "Get")

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        router.registerHandler(forMethod: Self.get, deserializer: RawBytes(), serializer: RawBytes()) { request, _ in
            let single = try await ServerRequest(stream: request)
            return StreamingServerResponse(single: ServerResponse(message: single.message))
        }
    }
}

/// An echo server on a free loopback port, served until the task running `serve()` ends.
struct GRPCEchoServer {
    let server: GRPCServer<HTTP2ServerTransport.Posix>
    let transport: HTTP2ServerTransport.Posix

    init() {
        transport = HTTP2ServerTransport.Posix(address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: .plaintext)
        server = GRPCServer(transport: transport, services: [EchoService()])
    }

    var port: Int {
        get async throws { try await transport.listeningAddress.ipv4!.port }
    }
}

/// One client with its own HTTP/2 connection.
struct GRPCEchoClient {
    let client: GRPCClient<HTTP2ClientTransport.Posix>

    init(port: Int) throws {
        client = GRPCClient(transport: try .http2NIOPosix(target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext))
    }

    func echo(_ payload: [UInt8]) async throws -> Int {
        try await client.unary(
            request: ClientRequest(message: payload), descriptor: EchoService.get, serializer: RawBytes(),
            deserializer: RawBytes(), options: .defaults
        ) { try $0.message.count }
    }
}
