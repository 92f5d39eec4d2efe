public import Testing

/// A Swift Testing trait that runs a suite (or a test) with its own `redis-server`, reachable
/// through ``RedisServerProcess/current``, and tears it down at the end.
///
/// ```swift
/// @Suite(.redisServer()) struct MyTests {
///     @Test func works() async throws {
///         let server = try RedisServerProcess.shared
///         …
///     }
/// }
/// ```
public struct RedisServerTrait: SuiteTrait, TestTrait, TestScoping {
    /// The server's options.
    public let options: RedisServerProcess.Options

    /// Scope once around a whole suite, or around each case of a test function.
    public func scopeProvider(for test: Test, testCase: Test.Case?) -> Self? {
        test.isSuite || testCase != nil ? self : nil
    }

    /// Starts the server, runs the suite or test with it as ``RedisServerProcess/current``,
    /// then removes it.
    public func provideScope(
        for test: Test,
        testCase: Test.Case?,
        performing function: @Sendable () async throws -> Void
    ) async throws {
        try await RedisServerProcess.withServer(self.options) { server in
            try await RedisServerProcess.$current.withValue(server) {
                try await function()
            }
        }
    }
}

extension Trait where Self == RedisServerTrait {
    /// Runs the suite or test with its own `redis-server` (see ``RedisServerTrait``).
    public static func redisServer(_ options: RedisServerProcess.Options = .init()) -> Self {
        RedisServerTrait(options: options)
    }
}

extension RedisServerProcess {
    /// The server provided by the enclosing `.redisServer()` trait.
    @TaskLocal public static var current: RedisServerProcess?

    /// The server provided by the enclosing `.redisServer()` trait.
    ///
    /// - Throws: if the test is not inside such a trait, so a misconfigured test fails loudly.
    public static var shared: RedisServerProcess {
        get throws {
            guard let current else {
                throw RedisServerError(.startFailed, "no redis-server in scope: add the .redisServer() trait to the suite")
            }
            return current
        }
    }
}
