/// The one error type of GatehouseLoad.
///
/// Callers switch on ``code``; ``message`` is for people. ``description`` is the message alone:
/// the report prints the last transport error as it is, `gatehouse load` prints a failed run as
/// `Error: <description>`, and every message already says what failed.
package struct LoadError: Error, CustomStringConvertible, Sendable {
    /// What went wrong, as an opaque, comparable value.
    package struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: Hashable, Sendable {
            case invalidOption, transport, staleConnection, malformedResponse, seedingFailed, runFailed
        }

        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// An option is out of range or cannot be parsed, or an API key is missing. The message
        /// names the command-line flag (the options mirror them). Nothing was sent.
        package static var invalidOption: Self { .init(.invalidOption) }
        /// A socket could not be made, or a connect, send or receive failed or timed out.
        package static var transport: Self { .init(.transport) }
        /// Nothing of the answer arrived on a kept-alive connection: the server closed it while
        /// idle, so the request never reached it and may be sent once more on a new connection.
        package static var staleConnection: Self { .init(.staleConnection) }
        /// The bytes are not an HTTP/1.x response within the parser's limits.
        package static var malformedResponse: Self { .init(.malformedResponse) }
        /// The import, a seeding sign-in or a pre-opened challenge failed: no timed run.
        package static var seedingFailed: Self { .init(.seedingFailed) }
        /// An event loop could not start, or threads did not finish within their bound.
        package static var runFailed: Self { .init(.runFailed) }

        /// A short name of the code.
        package var description: String {
            switch value {
            case .invalidOption: "invalidOption"
            case .transport: "transport"
            case .staleConnection: "staleConnection"
            case .malformedResponse: "malformedResponse"
            case .seedingFailed: "seedingFailed"
            case .runFailed: "runFailed"
            }
        }
    }

    /// What went wrong.
    package let code: Code
    /// A human-readable explanation (never an API key).
    package let message: String
    /// The error that caused this one, if any.
    package let underlying: (any Error)?
    /// The file that raised the error (`#fileID`).
    package let file: String
    /// The line that raised the error.
    package let line: Int

    /// Creates an error; `file` and `line` default to the call site.
    package init(_ code: Code, _ message: String, underlying: (any Error)? = nil, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.message = message
        self.underlying = underlying
        self.file = file
        self.line = line
    }

    /// A transport failure; `stale` when it shows a kept-alive connection closed while idle
    /// (``Code/staleConnection``).
    static func transport(_ message: String, stale: Bool = false, file: String = #fileID, line: Int = #line) -> LoadError {
        LoadError(stale ? .staleConnection : .transport, message, file: file, line: line)
    }

    /// The message alone (see the type's comment).
    package var description: String { message }
}
