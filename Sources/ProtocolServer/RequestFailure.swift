import Store
import WireProtocol

/// A refusal to send as an ERROR frame: a wire code and a message naming what is wrong.
public struct RequestFailure: Error, Sendable {
    public var code: ErrorCode
    public var message: String
    /// For the overloaded class (4xx): when to try again.
    public var retryAfterMs: UInt32

    public init(_ code: ErrorCode, _ message: String, retryAfterMs: UInt32 = 0) {
        self.code = code
        self.message = message
        self.retryAfterMs = retryAfterMs
    }

    /// The wire's view of any error a library threw: the store's errors and those of
    /// ``WireFailureConvertible`` types keep their meaning, anything else is `internal`.
    public init(_ error: any Error) {
        switch error {
        case let failure as RequestFailure: self = failure
        case let error as any WireFailureConvertible: self = error.requestFailure
        case let error as StoreError: self.init(Self.code(of: error), error.description)
        default: self.init(.internal, "\(error)")
        }
    }

    /// The store's refusals as wire codes, for every server over the store.
    public static func code(of error: StoreError) -> ErrorCode {
        switch error {
        case .invalidToken: .unauthenticated
        case .contributorNotFound, .datanetNotFound, .recordNotFound, .versionNotFound, .adapterNotFound,
            .inferenceNotFound, .jobNotFound:
            .notFound
        case .notDatanetOwner, .contributionNotPermitted, .datanetNotReadable, .notAdapterOwner, .notJobOwner, .notOperator:
            .permissionDenied
        case .datanetNameTaken, .duplicateRecord, .duplicateRequest, .checkpointExists, .metricExists,
            .recordAlreadyFlagged:
            .alreadyExists
        case .nothingToPublish, .recordAlreadyReviewed, .jobNotRunnable, .jobAlreadyFinished, .staleJobLease,
            .schemaTooNew, .insufficientFunds, .depositLimitReached, .idempotencyKeyReused:
            .failedPrecondition
        case .recordTooLarge: .tooLarge
        default: .invalidArgument
        }
    }
}

/// An error type of a service's libraries that knows its wire code.
public protocol WireFailureConvertible: Error {
    var requestFailure: RequestFailure { get }
}

extension Envelope {
    /// The ERROR frame that ends request `requestID` (or, on request id 0, the connection).
    public static func error(_ code: ErrorCode, _ message: String, requestID: UInt64, retryAfterMs: UInt32 = 0) -> Envelope {
        Envelope(
            requestID: requestID, flags: .final,
            message: .errorReply(Wire.ErrorReply(code: code.rawValue, retryAfterMs: retryAfterMs, message: message)))
    }

    public static func error(_ failure: RequestFailure, requestID: UInt64) -> Envelope {
        error(failure.code, failure.message, requestID: requestID, retryAfterMs: failure.retryAfterMs)
    }
}

extension Duration {
    public var wholeMicroseconds: UInt64 {
        let (seconds, attoseconds) = components
        return UInt64(max(0, seconds)) * 1_000_000 + UInt64(max(0, attoseconds)) / 1_000_000_000_000
    }
}
