/// The numeric error codes of ERROR and GOAWAY frames. The hundreds give the retry class.
public enum ErrorCode: UInt16, CaseIterable, Sendable {
    // 1xx: protocol errors; not retryable. On request id 0 the sender then closes the connection.
    case malformedFrame = 100
    case unsupportedVersion = 101
    case frameTooLarge = 102
    case unknownMessageType = 103
    case handshakeRequired = 104
    case duplicateRequestID = 105
    case flowControl = 106
    case invalidMessage = 107

    // 2xx: the request is refused; retrying it unchanged fails the same way.
    case unauthenticated = 200
    case permissionDenied = 201
    case invalidArgument = 202
    case notFound = 203
    case alreadyExists = 204
    case failedPrecondition = 205
    case tooLarge = 206
    case cancelled = 207
    case `internal` = 208

    // 3xx: transient; the same request may be retried (with backoff).
    case unavailable = 300
    case timeout = 301
    case aborted = 302

    // 4xx: overloaded; retry after `retry_after_ms`.
    case overloaded = 400
    case rateLimited = 401
    case tooManyRequests = 402

    public enum RetryClass: String, Sendable {
        case notRetryable = "not_retryable"
        case retryable
        case overloaded
    }

    public var retryClass: RetryClass { Self.retryClass(of: rawValue) }

    /// The class of any code, known to this version or not: it is a function of the code's range.
    public static func retryClass(of code: UInt16) -> RetryClass {
        switch code {
        case 300..<400: .retryable
        case 400..<500: .overloaded
        default: .notRetryable
        }
    }
}
