// swift-tools-version:6.1
// Gatehouse: two-step verification and session service.
// Layers, bottom to top (see README "Layout"):
//   CHiredis, CLibCrypto, CLibSSL,
//   CQRencode                        — thin system-library shims (pkg-config, apt providers);
//   CEpoll                           — <sys/epoll.h> for GatehouseLoad's event loop
//   CMalloc                          — <malloc.h> for GatehouseApp's return of freed memory
//   GatehouseSystem                  — POSIX plumbing several layers need and none owns: dedicated
//                                      OS threads for blocking C calls (the Redis I/O threads, SMTP
//                                      deliveries), child processes (the embedded redis-server,
//                                      test servers) and the monotonic clock; depends on nothing, so
//                                      GatehouseRedis, GatehouseMail, GatehouseService, GatehouseLoad
//                                      and GatehouseTesting share it
//                                      without depending on each other
//   GatehouseCrypto                  — libcrypto wrapped: HMAC, SHA, AES-GCM, Ed25519, randomness
//   GatehouseCore                    — OTP, base32, otpauth URIs, QR, tokens, keyring, envelopes (no I/O
//                                      beyond reading key files)
//   GatehouseRedis                   — the hiredis client (I/O threads, pipelining, scripts, streams)
//   GatehouseTesting                 — test helpers: real redis-server, SMTP, node and Dovecot
//                                      processes, real IMAP/POP3/SMTP clients
//   GatehouseMail                    — SMTP delivery of emailed codes (STARTTLS via libssl)
//   GatehouseService                 — the domain over Redis (no HTTP)
//   GatehouseHTTP                    — the HTTP edge (Hummingbird 2): the /v1/auth, sign-in and
//                                      mail-check fast paths, the router grouped by area, typed
//                                      bodies, problems
//   GatehouseWeb                     — the pages for people (second step, enrolment, settings,
//                                      forgot password, the webmail hand-off, a stand-in webmail):
//                                      Mustache templates over the service layer, beside GatehouseHTTP
//   GatehouseApp                     — one node wired from configuration (buildApplication): Redis,
//                                      keys, mail, service, keyring reloader, HTTP edge and pages
//   GatehouseLoad                    — the load generator behind `gatehouse load` (epoll client, or
//                                      the same run on SwiftNIO with --engine nio; seeding, operation
//                                      mix, report); talks to nodes over HTTP only
//   gatehouse                        — the executable: swift-argument-parser commands over the above
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "gatehouse",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "gatehouse", targets: ["gatehouse"]),
        .library(name: "GatehouseCore", targets: ["GatehouseCore"]),
        .library(name: "GatehouseCrypto", targets: ["GatehouseCrypto"]),
        .library(name: "GatehouseRedis", targets: ["GatehouseRedis"]),
        .library(name: "GatehouseTesting", targets: ["GatehouseTesting"]),
        .library(name: "GatehouseMail", targets: ["GatehouseMail"]),
        // For the fuzz package (fuzz/), which drives the fast path's state machine.
        .library(name: "GatehouseHTTP", targets: ["GatehouseHTTP"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.0.0"),
    ],
    targets: [
        // MARK: C system libraries
        .systemLibrary(
            name: "CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        .systemLibrary(
            name: "CLibCrypto",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        .systemLibrary(
            name: "CQRencode",
            pkgConfig: "libqrencode",
            providers: [.apt(["libqrencode-dev"])]
        ),
        // epoll(7) for the load generator's event loop (a libc header, nothing to link).
        .systemLibrary(name: "CEpoll"),
        // malloc_trim(3) for a node returning freed memory (a libc header, nothing to link).
        .systemLibrary(name: "CMalloc"),
        .systemLibrary(
            name: "CLibSSL",
            pkgConfig: "libssl",
            providers: [.apt(["libssl-dev"])]
        ),

        // MARK: POSIX plumbing shared by the layers above (threads, child processes), on libc only
        .target(
            name: "GatehouseSystem",
            swiftSettings: swiftSettings
        ),

        // MARK: Crypto and OTP/token core (no network I/O)
        .target(
            name: "GatehouseCrypto",
            dependencies: ["CLibCrypto"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "GatehouseCore",
            dependencies: ["GatehouseCrypto", "CQRencode"],
            swiftSettings: swiftSettings
        ),

        // MARK: Redis (hiredis on dedicated I/O threads, and on event loops) and its test helpers
        .target(
            name: "GatehouseRedis",
            dependencies: [
                "CHiredis",
                "GatehouseCrypto",
                "GatehouseSystem",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            // Starts real peers for tests (redis-server, an SMTP sink, gatehouse serve, Dovecot),
            // and builds WebAuthn ceremonies with real keys (GatehouseCore's CBOR and WebAuthn types)
            // and real mail clients; GatehouseCrypto hashes Dovecot's test passwords.
            name: "GatehouseTesting",
            dependencies: ["GatehouseRedis", "GatehouseSystem", "GatehouseCrypto", "GatehouseCore"],
            swiftSettings: swiftSettings
        ),

        // MARK: Mail (SMTP delivery of emailed codes, STARTTLS via libssl, on dedicated threads)
        .target(
            name: "GatehouseMail",
            dependencies: [
                "CLibSSL",
                "GatehouseSystem",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Service (domain logic over Redis; no HTTP) and the HTTP edge
        .target(
            name: "GatehouseService",
            dependencies: [
                "GatehouseCore",
                "GatehouseCrypto",
                "GatehouseRedis",
                "GatehouseSystem",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "GatehouseHTTP",
            dependencies: [
                "GatehouseService",
                "GatehouseCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Pages for people (server-rendered, beside the API; no API key in a browser)
        .target(
            name: "GatehouseWeb",
            dependencies: [
                "GatehouseService",
                "GatehouseCore",
                "GatehouseCrypto",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Application (one node wired from configuration: Redis, keys, mail, service, HTTP edge)
        .target(
            name: "GatehouseApp",
            dependencies: [
                "CMalloc",
                "GatehouseHTTP",
                "GatehouseWeb",
                "GatehouseService",
                "GatehouseMail",
                "GatehouseCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Load generator (an HTTP client of running nodes; no service code)
        .target(
            name: "GatehouseLoad",
            dependencies: [
                "CEpoll",
                "GatehouseCore",
                "GatehouseCrypto",
                "GatehouseSystem",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Executable
        .executableTarget(
            name: "gatehouse",
            dependencies: [
                "GatehouseApp",
                "GatehouseLoad",
                "GatehouseService",
                "GatehouseCore",
                "GatehouseCrypto",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Tests
        .testTarget(
            name: "GatehouseCoreTests",
            dependencies: ["GatehouseCore", "GatehouseCrypto", "GatehouseTesting"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            // Nodes built with `buildApplication` and run by HummingbirdTesting's live framework
            // (real `gatehouse serve` processes where only a process shows it), over HTTP against a
            // real redis-server.
            name: "GatehouseServiceTests",
            // In-process nodes (GatehouseApp), and GatehouseHTTP with NIO's value types for the I/O-free
            // tests of the fast path's state machine.
            dependencies: [
                "gatehouse", "GatehouseApp", "GatehouseHTTP", "GatehouseService", "GatehouseTesting", "GatehouseCore", "GatehouseCrypto",
                "GatehouseRedis", "GatehouseSystem",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            // The HTTP edge without a node: bodies as written, no Redis; the raw `/v1/auth` reader
            // against NIO's HTTP/1 decoder in an embedded channel.
            name: "GatehouseHTTPTests",
            dependencies: [
                "GatehouseHTTP", "GatehouseService", "GatehouseCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            // Depends on the executable so `swift test` builds it; the tests run the binary
            // (GatehouseTesting's Program).
            name: "GatehouseCLITests",
            dependencies: ["gatehouse", "GatehouseTesting"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            // The load generator's parser and options, without a node.
            name: "GatehouseLoadTests",
            dependencies: ["GatehouseLoad"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            // ChildProcess: spawning, waiting with and without a timeout, reaping.
            name: "GatehouseSystemTests",
            dependencies: ["GatehouseSystem"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GatehouseRedisTests",
            dependencies: [
                "GatehouseRedis", "GatehouseSystem", "GatehouseTesting",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            // Delivers to a real SMTP server (aiosmtpd) started by GatehouseTesting.
            name: "GatehouseMailTests",
            dependencies: ["GatehouseMail", "GatehouseTesting"],
            swiftSettings: swiftSettings
        ),
    ]
)
