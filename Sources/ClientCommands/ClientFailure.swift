import TributaryClient
import WireProtocol

/// Why a command failed, as one short line for a person, and the process's exit status.
public struct ClientFailure: Error, Equatable, CustomStringConvertible {
    /// Exit statuses, from sysexits(3) where one fits, so that scripts can tell the causes apart.
    public enum Kind: Int32, Sendable {
        /// The work ran but its outcome is a failure: a failed or cancelled job, a broken ledger, lines refused.
        case failed = 1
        /// Bad arguments or environment (ArgumentParser's own usage errors exit 64 too).
        case usage = 64
        /// The server refused the request (invalid argument, not found, already exists, ...).
        case refused = 65
        /// An input file cannot be read.
        case input = 66
        /// No connection: the server is down or unreachable, or the connection was lost.
        case connection = 69
        /// Transient: the server is busy, starting or draining; retry later.
        case temporary = 75
        /// The server broke the protocol, or a transfer failed its checksum.
        case protocolError = 76
        /// No token, a wrong token, or not the owner.
        case permission = 77
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var exitCode: Int32 { kind.rawValue }
    public var description: String { message }

    /// `error` from talking to the `role` server at `address`, explained: what failed and what to do.
    public static func explaining(
        _ error: any Error, role: ServerRole, address: ServerAddress, hadToken: Bool
    ) -> ClientFailure {
        switch error {
        case let failure as ClientFailure: return failure
        case let server as ServerError: return explaining(server, hadToken: hadToken)
        case let connection as ConnectionError:
            switch connection {
            case .handshake(let reason):
                return ClientFailure(.connection, "cannot connect to \(role.name) at \(address): \(reason)")
            case .protocolViolation:
                return ClientFailure(.protocolError, "\(role.name) at \(address): \(connection)")
            case .closed, .goingAway:
                return ClientFailure(.connection, "lost the connection to \(role.name) at \(address): \(connection); try again")
            }
        default:
            return ClientFailure(.connection, unreachable(role: role, address: address))
        }
    }

    /// The message for a server that does not answer at all.
    public static func unreachable(role: ServerRole, address: ServerAddress) -> String {
        "cannot connect to \(role.name) at \(address): is `\(role.serveCommand)` running? (set \(role.variable))"
    }

    static func explaining(_ error: ServerError, hadToken: Bool) -> ClientFailure {
        switch ErrorCode(rawValue: error.code) {
        case .unauthenticated:
            return ClientFailure(
                .permission,
                hadToken
                    ? "unauthenticated: the server refused the token (\(error.message)); set TRIBUTARY_TOKEN to a valid token (tributary signup)"
                    : "unauthenticated: set TRIBUTARY_TOKEN (tributary signup)")
        case .permissionDenied:
            return ClientFailure(.permission, "permission denied: \(error.message)")
        default:
            break
        }
        let name = ErrorCode(rawValue: error.code).map { snakeCase("\($0)") } ?? "error \(error.code)"
        switch error.retryClass {
        case .retryable, .overloaded:
            let after = error.retryAfterMs > 0 ? " in \(error.retryAfterMs) ms" : " later"
            return ClientFailure(.temporary, "\(name): \(error.message); try again\(after)")
        case .notRetryable:
            return ClientFailure(error.code < 200 ? .protocolError : .refused, "\(name): \(error.message)")
        }
    }
}

/// `camelCase` as `snake_case`, the catalogue's spelling of names.
public func snakeCase(_ name: String) -> String {
    var result = ""
    for character in name {
        if character.isUppercase {
            if !result.isEmpty { result += "_" }
            result += character.lowercased()
        } else {
            result.append(character)
        }
    }
    return result
}
