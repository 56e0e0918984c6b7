/// A server's address, `HOST:PORT`.
public struct ServerAddress: Equatable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `HOST:PORT` (an IPv6 host in brackets: `[::1]:7070`); `source` names where the text came from.
    public init(parsing text: String, source: String) throws(ClientFailure) {
        guard let colon = text.lastIndex(of: ":"),
            let port = Int(text[text.index(after: colon)...]), (1...65_535).contains(port)
        else {
            throw ClientFailure(.usage, "\(source): \"\(text)\" is not HOST:PORT (e.g. 127.0.0.1:7070)")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw ClientFailure(.usage, "\(source): \"\(text)\" has no host") }
        self.init(host: host, port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// The two servers a client talks to: engine requests go to an engine, job requests to the coordinator.
public enum ServerRole: Sendable {
    case engine
    case coordinator

    public var name: String { self == .engine ? "engine" : "coordinator" }
    public var defaultAddress: ServerAddress {
        ServerAddress(host: "127.0.0.1", port: self == .engine ? 7070 : 7080)
    }
    /// The environment variable that names this server.
    public var variable: String { self == .engine ? "TRIBUTARY_SERVER" : "TRIBUTARY_COORDINATOR" }
    public var flag: String { self == .engine ? "--server" : "--coordinator" }
    /// The command that starts this server, for "is it running?" hints.
    public var serveCommand: String { self == .engine ? "tributary-engine serve" : "tributary-coordinator" }
}

/// Where to connect and as whom: each from its flag, else its environment variable, else the default.
public struct ClientSettings: Equatable, Sendable {
    public var server: ServerAddress
    public var coordinator: ServerAddress
    /// The contributor's API token; empty for anonymous, read-only use.
    public var token: String

    public init(server: ServerAddress, coordinator: ServerAddress, token: String) {
        self.server = server
        self.coordinator = coordinator
        self.token = token
    }

    public static func resolve(
        server: String?, coordinator: String?, token: String?, environment: [String: String]
    ) throws(ClientFailure) -> ClientSettings {
        func address(_ flag: String?, _ role: ServerRole) throws(ClientFailure) -> ServerAddress {
            if let flag { return try ServerAddress(parsing: flag, source: role.flag) }
            if let value = environment[role.variable], !value.isEmpty { return try ServerAddress(parsing: value, source: role.variable) }
            return role.defaultAddress
        }
        return ClientSettings(
            server: try address(server, .engine), coordinator: try address(coordinator, .coordinator),
            token: token ?? environment["TRIBUTARY_TOKEN"] ?? "")
    }

    public func address(of role: ServerRole) -> ServerAddress { role == .engine ? server : coordinator }
}
