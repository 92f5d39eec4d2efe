import Foundation

/// A sanity check failed: the benchmark would measure something other than what it claims.
public struct BenchFailure: Error, CustomStringConvertible {
    /// What failed.
    public var description: String
    /// Creates a failure.
    public init(_ description: String) { self.description = description }
}

/// Prints `SANITY ok <what>` or throws.
public func check(_ condition: @autoclosure () throws -> Bool, _ what: String) throws {
    guard try condition() else { throw BenchFailure("sanity check failed: \(what)") }
    progress("SANITY ok \(what)")
}

/// Prints `SANITY ok <what>` when `body` throws, or throws itself when it does not.
public func expectFailure(_ what: String, _ body: () throws -> Void) throws {
    do { try body() } catch {
        progress("SANITY ok \(what) (\(error))")
        return
    }
    throw BenchFailure("sanity check failed: \(what) (it succeeded)")
}

/// Async variant of `expectFailure(_:_:)`.
public func expectFailure(_ what: String, _ body: () async throws -> Void) async throws {
    do { try await body() } catch {
        progress("SANITY ok \(what) (\(String(describing: error).prefix(120)))")
        return
    }
    throw BenchFailure("sanity check failed: \(what) (it succeeded)")
}

/// Prints `line` and flushes, so progress shows at once even when stdout is a pipe.
public func progress(_ line: String) {
    print(line)
    fflush(nil)  // nil: all streams (naming `stdout` is not concurrency-safe in Swift 6)
}

/// One line about the machine, for reports: cores, CPU model, OpenSSL.
public enum Machine {
    /// `nproc=2 cpu="…" openssl="OpenSSL 3.0.x …"`.
    public static func describe() -> String {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("model name") })
            .flatMap { $0.split(separator: ":", maxSplits: 1).last }
            .map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown"
        return "nproc=\(ProcessInfo.processInfo.activeProcessorCount) cpu=\"\(model)\" openssl=\"\(OpenSSLSpeed.version())\""
    }
}
